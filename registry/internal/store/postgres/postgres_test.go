package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/pgtest"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the store suite on PostgreSQL, with a second
// replica (another Store on the same database) for the concurrency,
// secrets and change feed tests.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{New: func(t *testing.T) storetest.Instance {
		dsn := pgtest.NewDB(t)
		cur := open(t, dsn)
		return storetest.Instance{
			Store: cur,
			Reopen: func(t *testing.T) store.Store {
				cur.Close()
				cur = open(t, dsn)
				return cur
			},
			Replica: func(t *testing.T) store.Store { return open(t, dsn) },
		}
	}})
}

func TestMigrationsRecordedAndNewerRefused(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	s := open(t, dsn)
	s.Close()
	s = open(t, dsn) // migrating twice changes nothing
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != SchemaVersion() {
		t.Fatalf("%d migrations recorded (%v), want %d", n, err, SchemaVersion())
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dsn, Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a database from a newer binary = %v, want an error", err)
	}
}

// Replicas starting at the same time on an empty database agree on one
// schema and one mesh.
func TestConcurrentFirstStart(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	type res struct {
		m   store.Mesh
		err error
	}
	out := make(chan res, 4)
	for range 4 {
		go func() {
			s, err := Open(ctx, dsn, Options{})
			if err != nil {
				out <- res{err: err}
				return
			}
			defer s.Close()
			m, err := s.InitMesh(ctx, netip.MustParsePrefix("10.9.0.0/16"), storetest.Now)
			out <- res{m, err}
		}()
	}
	var first store.Mesh
	for i := range 4 {
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		if i == 0 {
			first = r.m
		} else if r.m.ID != first.ID || string(r.m.PSK) != string(first.PSK) {
			t.Fatalf("replicas disagree on the mesh: %s and %s", first.ID, r.m.ID)
		}
	}
}

// The DSN's password never appears in an error, and a password given
// apart from the DSN is used.
func TestPasswordNotInErrors(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	bad := strings.Replace(dsn, "postgres@", "postgres:hunter2-secret@", 1)
	bad = strings.Replace(bad, "?host=", "?connect_timeout=5&host=/nonexistent-dir&x=", 1)
	_, err := Open(ctx, bad, Options{})
	if err == nil {
		t.Fatal("Open with an unreachable host succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error shows the password: %v", err)
	}
	_, err = Open(ctx, "postgres://u:hunter2-secret@[bad", Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("parse error = %v; want an error without the password", err)
	}
}

// A batch of signatures that waits (here on a row lock another
// transaction holds) does not hold the calls that come after it: they are
// recorded by another recorder meanwhile. When the lock goes, the waiting
// signature is recorded as new exactly once.
func TestReplayBatchesDoNotWaitForEachOther(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	s := open(t, dsn)
	held := sha256.Sum256([]byte("held"))
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO replays (hash, at) VALUES ($1, $2)`, held[:], time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	heldDone := make(chan bool, 1)
	go func() {
		fresh, err := s.AddReplay(ctx, held, time.Now())
		if err != nil {
			t.Error(err)
		}
		heldDone <- fresh
	}()
	// The held signature's insert waits on the uncommitted row.
	waitFor(t, ctx, s, "an insert waiting on the held row", `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO replays%'`)
	other := sha256.Sum256([]byte("other"))
	otherDone := make(chan error, 1)
	go func() {
		fresh, err := s.AddReplay(ctx, other, time.Now())
		if err == nil && !fresh {
			err = errors.New("a new signature was reported as a replay")
		}
		otherDone <- err
	}()
	select {
	case err := <-otherDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-heldDone:
		t.Fatal("a signature queued behind a waiting batch was answered only after that batch ended")
	case <-time.After(30 * time.Second):
		t.Fatal("a signature queued behind a waiting batch was not recorded within 30s")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case fresh := <-heldDone:
		if !fresh {
			t.Fatal("the held signature, never committed elsewhere, was reported as a replay")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the held signature was not recorded within 30s of the lock's release")
	}
	if fresh, err := s.AddReplay(ctx, held, time.Now()); err != nil || fresh {
		t.Fatalf("the held signature again: fresh %v, %v; want a replay", fresh, err)
	}
}

// waitFor waits until query (a count) returns at least 1.
func waitFor(t *testing.T, ctx context.Context, s *Store, what, query string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := s.pool.QueryRow(ctx, query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 30s", what)
		}
	}
}
