package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

var now = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func token(t *testing.T, s *Store, reusable bool) (string, [32]byte) {
	t.Helper()
	tok, _ := jointoken.New("pin")
	h := tok.SecretHash()
	if err := s.CreateToken(context.Background(), store.Token{ID: tok.ID, SecretHash: h[:], Reusable: reusable, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return tok.ID, h
}

func join(s *Store, id string, h [32]byte, name string, key nodekey.PublicKey) (store.JoinResult, error) {
	return s.Join(context.Background(), store.JoinParams{TokenID: id, TokenSecretHash: h, Name: name, PublicKey: key,
		NewNodeID: testID(name), CredentialHash: []byte("c"), Now: now})
}

func key(t *testing.T) nodekey.PublicKey {
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func TestMeshPersistsAndMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	ctx := context.Background()
	s := open(t, path)
	m, err := s.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/16"), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.PSK) != 32 || m.ID == "" {
		t.Fatalf("mesh = %+v", m)
	}
	v, _ := s.BumpVersion(ctx)
	s.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	s2 := open(t, path)
	m2, err := s2.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/16"), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if m2.ID != m.ID || string(m2.PSK) != string(m.PSK) || !m2.CreatedAt.Equal(m.CreatedAt) {
		t.Fatalf("mesh after reopen = %+v, want %+v", m2, m)
	}
	if v2, _ := s2.Version(ctx); v2 != v {
		t.Fatalf("version after reopen = %d, want %d", v2, v)
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

func TestCIDRChange(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), FileName))
	if _, err := s.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/16"), now); err != nil {
		t.Fatal(err)
	}
	// No nodes yet: a new prefix is adopted.
	m, err := s.InitMesh(ctx, netip.MustParsePrefix("10.2.0.0/16"), now)
	if err != nil || m.CIDR.String() != "10.2.0.0/16" {
		t.Fatalf("InitMesh new prefix = %v, %v", m.CIDR, err)
	}
	id, h := token(t, s, true)
	res, err := join(s, id, h, "a", key(t))
	if err != nil || res.Node.IP.String() != "10.2.0.1" {
		t.Fatalf("join = %v, %v; want 10.2.0.1", res.Node.IP, err)
	}
	if _, err := s.InitMesh(ctx, netip.MustParsePrefix("10.3.0.0/16"), now); !errors.Is(err, store.ErrCIDRChanged) {
		t.Fatalf("InitMesh with nodes and a new prefix = %v, want ErrCIDRChanged", err)
	}
}

func TestJoinAllocation(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), FileName))
	if _, err := s.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/29"), now); err != nil { // 6 hosts
		t.Fatal(err)
	}
	id, h := token(t, s, true)
	keys := make([]nodekey.PublicKey, 6)
	for i := range keys {
		keys[i] = key(t)
		res, err := join(s, id, h, fmt.Sprintf("n%d", i), keys[i])
		if err != nil || res.Node.IP.String() != fmt.Sprintf("10.1.0.%d", i+1) {
			t.Fatalf("join n%d = %v, %v; want lowest free address", i, res.Node.IP, err)
		}
	}
	if _, err := join(s, id, h, "extra", key(t)); !errors.Is(err, store.ErrRangeFull) {
		t.Fatalf("join in a full range = %v, want ErrRangeFull", err)
	}
	// Re-join: same IP, same ID, rename allowed, Rejoined set.
	res, err := join(s, id, h, "renamed", keys[2])
	if err != nil || res.Node.IP.String() != "10.1.0.3" || res.Node.ID != testID("n2") || !res.Rejoined {
		t.Fatalf("rejoin = %+v, %v", res, err)
	}
	// Name clash with another key changes nothing.
	if _, err := join(s, id, h, "n0", keys[1]); !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("join as n0 with n1's key = %v, want ErrNameTaken", err)
	}
	toks, _ := s.Tokens(ctx)
	if toks[0].Uses != 7 {
		t.Fatalf("uses = %d, want 7 (failed joins do not count)", toks[0].Uses)
	}
	// Remove n4: its address stays leased to its key until needed.
	if _, _, err := s.RemoveNode(ctx, "n4", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	res, err = join(s, id, h, "n4", keys[4])
	if err != nil || res.Node.IP.String() != "10.1.0.5" {
		t.Fatalf("rejoin after removal = %v, %v; want 10.1.0.5", res.Node.IP, err)
	}
	// By ID (names never have an ID's form, so the two do not mix).
	if _, _, err := s.RemoveNode(ctx, testID("n5"), now.Add(time.Minute)); err != nil {
		t.Fatalf("remove by ID: %v", err)
	}
	res, err = join(s, id, h, "newcomer", key(t))
	if err != nil || res.Node.IP.String() != "10.1.0.6" {
		t.Fatalf("newcomer in a full range with a removed node = %v, %v; want the removed node's 10.1.0.6", res.Node.IP, err)
	}
	if _, _, err := s.RemoveNode(ctx, "nobody", now.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("remove unknown = %v, want ErrNotFound", err)
	}
}

func TestConcurrentStoreJoins(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), FileName))
	if _, err := s.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/24"), now); err != nil {
		t.Fatal(err)
	}
	id, h := token(t, s, true)
	single, sh := token(t, s, false)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ips := map[netip.Addr]bool{}
	singleOK := 0
	for i := range 100 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			res, err := join(s, id, h, fmt.Sprintf("r%d", i), key(t))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if ips[res.Node.IP] {
				t.Errorf("duplicate %s", res.Node.IP)
			}
			ips[res.Node.IP] = true
		}()
		go func() {
			defer wg.Done()
			_, err := join(s, single, sh, fmt.Sprintf("s%d", i), key(t))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				singleOK++
			} else if !errors.Is(err, store.ErrTokenInvalid) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if singleOK != 1 {
		t.Fatalf("single-use token admitted %d joins, want 1", singleOK)
	}
	v, nodes, err := s.Nodes(ctx)
	if err != nil || len(nodes) != 101 || v < 102 {
		t.Fatalf("Nodes = v%d %d nodes %v; want 101 nodes, version >= 102", v, len(nodes), err)
	}
}

func TestTokenRules(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), FileName))
	s.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/24"), now)
	id, h := token(t, s, true)
	if err := s.CreateToken(ctx, store.Token{ID: id, SecretHash: h[:], CreatedAt: now}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate token id = %v", err)
	}
	// Expired.
	p := store.JoinParams{TokenID: id, TokenSecretHash: h, Name: "late", PublicKey: key(t), NewNodeID: "x", CredentialHash: []byte("c"), Now: now.Add(2 * time.Hour)}
	if _, err := s.Join(ctx, p); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("expired token = %v", err)
	}
	if err := s.RevokeToken(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := join(s, id, h, "revoked", key(t)); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("revoked token = %v", err)
	}
	if err := s.RevokeToken(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke unknown = %v", err)
	}
	toks, _ := s.Tokens(ctx)
	if len(toks) != 1 || !toks[0].Revoked || toks[0].Uses != 0 {
		t.Fatalf("tokens = %+v", toks)
	}
}

// testID returns a node ID of the registry's form for a test node.
func testID(name string) string {
	h := sha256.Sum256([]byte(name))
	return "n" + hex.EncodeToString(h[:10])
}

// TestRemoveNodeRotatesPSK: removal stores a fresh PSK and keeps the old
// one as previous with its expiry; a failed removal rotates nothing.
func TestRemoveNodeRotatesPSK(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), FileName))
	m, err := s.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/24"), now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.PSKs(ctx)
	if err != nil || !bytes.Equal(p.Current, m.PSK) || p.Previous != nil || !p.PreviousUntil.IsZero() {
		t.Fatalf("PSKs before any removal = %+v, %v; want the mesh PSK alone", p, err)
	}
	id, h := token(t, s, true)
	if _, err := join(s, id, h, "n0", key(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RemoveNode(ctx, "nobody", now.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if p2, _ := s.PSKs(ctx); !bytes.Equal(p2.Current, m.PSK) || p2.Previous != nil {
		t.Fatalf("failed removal rotated the PSK: %+v", p2)
	}
	until := now.Add(5 * time.Minute)
	if _, _, err := s.RemoveNode(ctx, "n0", until); err != nil {
		t.Fatal(err)
	}
	p, err = s.PSKs(ctx)
	if err != nil || len(p.Current) != 32 || bytes.Equal(p.Current, m.PSK) || !bytes.Equal(p.Previous, m.PSK) || !p.PreviousUntil.Equal(until) {
		t.Fatalf("PSKs after removal = %+v, %v; want a fresh current, the old as previous until %v", p, err, until)
	}
}
