package sqlite

import (
	"context"
	"database/sql"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/storetest"
)

var now = storetest.Now

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openOld writes a database of an older schema with stmts (after creating
// schema_migrations) and opens it, migrating it.
func openOld(t *testing.T, stmts ...string) *Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range append([]string{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`}, stmts...) {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	return open(t, path)
}

// TestConformance runs the store suite on SQLite (one registry: no
// replicas, secrets or change feed).
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{New: func(t *testing.T) storetest.Instance {
		path := filepath.Join(t.TempDir(), FileName)
		s := open(t, path)
		cur := s
		return storetest.Instance{
			Store: s,
			Reopen: func(t *testing.T) store.Store {
				cur.Close()
				cur = open(t, path)
				return cur
			},
		}
	}})
}

func TestFileModeAndMigrationsRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	ctx := context.Background()
	s := open(t, path)
	if _, err := s.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/16"), now); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	s2 := open(t, path)
	if _, err := s2.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/16"), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var n int
	s2.db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n)
	if n != SchemaVersion() {
		t.Fatalf("%d migrations recorded, want %d", n, SchemaVersion())
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := open(t, path)
	if _, err := s.db.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(context.Background(), path); err == nil {
		t.Fatal("Open accepted a database from a newer binary")
	}
}
