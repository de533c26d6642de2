package policystore

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

const polV1 = `tags: [web, db]
rules:
  - {name: web-db, from: tag:web, to: tag:db, proto: tcp, ports: [5432]}
test_nodes:
  w: [tag:web]
  d: [tag:db]
tests:
  - {from: w, accept: [d:5432], deny: [d:22]}
`

const polV2 = `tags: [web, db]
rules:
  - {name: web-db, from: tag:web, to: tag:db, proto: tcp, ports: [5432, 6432]}
  - {name: ping, from: "*", to: "*", proto: icmp}
`

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func nodes() []api.Node {
	return []api.Node{
		{Name: "web1", IP: netip.MustParseAddr("100.64.0.2"), Tags: []string{"web"}},
		{Name: "db1", IP: netip.MustParseAddr("100.64.0.3"), Tags: []string{"db"}},
		{Name: "other", IP: netip.MustParseAddr("100.64.0.4")},
	}
}

func TestPutGetRollback(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cur, ok := s.Current(); ok || cur.Version != 0 || cur.Policy != string(policy.DefaultYAML) {
		t.Fatalf("empty store: Current() = %+v, %v; want the built-in default as version 0", cur, ok)
	}
	if vs, err := s.Versions(); err != nil || len(vs) != 0 {
		t.Fatalf("empty store: Versions() = %+v, %v; want none", vs, err)
	}
	s.SetNodes(nodes())
	if f := s.Filter(&api.Node{Name: "db1"}); f == nil || f.PolicyVersion != 0 || len(f.Rules) != 1 || f.Rules[0].Name != "ping" || len(f.Rules[0].Sources) != 2 {
		t.Fatalf("Filter(db1) without an applied policy = %+v, want the default's ping from the two others", f)
	}
	resp, err := s.Put([]byte(polV1), 0, t0)
	if err != nil || resp.Version != 1 || !resp.Changed || resp.Tests != 2 {
		t.Fatalf("Put(v1) = %+v, %v", resp, err)
	}
	f := s.Filter(&api.Node{Name: "db1"})
	if f == nil || f.PolicyVersion != 1 || len(f.Rules) != 1 || f.Rules[0].Sources[0] != netip.MustParsePrefix("100.64.0.2/32") {
		t.Fatalf("Filter(db1) = %+v", f)
	}
	if f := s.Filter(&api.Node{Name: "web1"}); f == nil || len(f.Rules) != 0 {
		t.Fatalf("Filter(web1) = %+v, want no rules", f)
	}
	// Same text again: no new version.
	if resp, err := s.Put([]byte(polV1), 0, t0); err != nil || resp.Changed || resp.Version != 1 {
		t.Fatalf("Put(v1 again) = %+v, %v", resp, err)
	}
	// Wrong base version.
	if _, err := s.Put([]byte(polV2), 7, t0); !errors.Is(err, ErrConflict) {
		t.Fatalf("Put(if 7) = %v, want ErrConflict", err)
	}
	if resp, err := s.Put([]byte(polV2), 1, t0.Add(time.Minute)); err != nil || resp.Version != 2 {
		t.Fatalf("Put(v2) = %+v, %v", resp, err)
	}
	if f := s.Filter(&api.Node{Name: "web1"}); f == nil || f.PolicyVersion != 2 || len(f.Rules) != 1 || f.Rules[0].Name != "ping" {
		t.Fatalf("Filter(web1) after v2 = %+v", f)
	}
	// Roll back: the old text becomes version 3.
	old, err := s.Get(1)
	if err != nil || old.Policy != polV1 || !old.CreatedAt.Equal(t0) {
		t.Fatalf("Get(1) = %+v, %v", old, err)
	}
	if resp, err := s.Put([]byte(old.Policy), 0, t0.Add(2*time.Minute)); err != nil || resp.Version != 3 {
		t.Fatalf("rollback Put = %+v, %v", resp, err)
	}
	vs, err := s.Versions()
	if err != nil || len(vs) != 3 || vs[0].Version != 3 || vs[2].Version != 1 || vs[2].Bytes != len(polV1) {
		t.Fatalf("Versions = %+v, %v", vs, err)
	}
	if _, err := s.Get(9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(9) = %v, want ErrNotFound", err)
	}

	// Reopen: the current version comes back, and compiles for nodes.
	s2, err := Open(dir, []byte(polV2), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	cur, ok := s2.Current()
	if !ok || cur.Version != 3 || cur.Policy != polV1 {
		t.Fatalf("reopened Current = %+v, %v (the bootstrap must not replace a stored policy)", cur, ok)
	}
	s2.SetNodes(nodes())
	if f := s2.Filter(&api.Node{Name: "db1"}); f == nil || f.PolicyVersion != 3 || len(f.Rules) != 1 {
		t.Fatalf("reopened Filter(db1) = %+v", f)
	}
}

func TestPutRefusesAndChangesNothing(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SetNodes(nodes())
	if _, err := s.Put([]byte(polV1), 0, t0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		doc     string
		wantErr error
		wantMsg string
	}{
		{"syntax", "rules: [", ErrInvalid, "policy.yaml:1:"},
		{"bad port", "rules:\n  - {from: a, to: b, proto: tcp, ports: [90-80]}\n", ErrInvalid, `policy.yaml:2: rules[0].ports[0]: invalid port range "90-80"`},
		{"failing test", polV1 + "  - {from: w, deny: [d:5432]}\n", ErrTestsFailed, `test "tests[1]" failed: w should not reach d:5432 but rule web-db allows it`},
		// A real node's tags win over test_nodes: other has no tags.
		{"real node", polV1 + "  - {from: other, accept: [db1:5432]}\n", ErrTestsFailed, "other should reach db1:5432 but no rule allows it"},
		{"too big", strings.Repeat("#", MaxPolicyBytes+1), ErrInvalid, "bytes, more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Put([]byte(tt.doc), 0, t0)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Put = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			cur, _ := s.Current()
			if cur.Version != 1 {
				t.Errorf("current version = %d after a refused Put, want 1", cur.Version)
			}
		})
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d files in the store, want 1", len(ents))
	}
}

func TestBootstrapAndPrune(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, []byte("rules: [\n"), 0, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Open with a bad bootstrap = %v, want ErrInvalid", err)
	}
	s, err := Open(dir, policy.DefaultYAML, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cur, ok := s.Current(); !ok || cur.Version != 1 {
		t.Fatalf("bootstrapped Current = %+v, %v", cur, ok)
	}
	for i := range 3 {
		doc := polV2 + strings.Repeat("#\n", i+1)
		if _, err := s.Put([]byte(doc), 0, t0); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := s.Versions()
	if err != nil || len(vs) != 2 || vs[0].Version != 4 || vs[1].Version != 3 {
		t.Fatalf("Versions after prune = %+v, %v", vs, err)
	}
}

func TestSetNodesRecompiles(t *testing.T) {
	s, err := Open(t.TempDir(), []byte(polV2), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := nodes()
	s.SetNodes(ns)
	if f := s.Filter(&api.Node{Name: "db1"}); len(f.Rules) != 2 {
		t.Fatalf("Filter(db1) = %+v", f)
	}
	// other gets the web tag: db1's web-db rule gains a source.
	ns[2].Tags = []string{"web"}
	s.SetNodes(ns)
	f := s.Filter(&api.Node{Name: "db1"})
	for _, r := range f.Rules {
		if r.Name == "web-db" && len(r.Sources) != 2 {
			t.Errorf("web-db sources = %v, want 2 after a tag change", r.Sources)
		}
	}
	// A node the store has not seen gets an empty filter, not none.
	if f := s.Filter(&api.Node{Name: "newcomer"}); f == nil || len(f.Rules) != 0 {
		t.Errorf("Filter(newcomer) = %+v, want empty", f)
	}
}
