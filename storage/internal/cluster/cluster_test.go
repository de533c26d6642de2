package cluster

import (
	"net/netip"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/creds"
)

func pub(b byte) nodekey.PublicKey {
	var p nodekey.PublicKey
	for i := range p {
		p[i] = b
	}
	return p
}

func TestDeriveSameOnEveryNodeDistinctPerInput(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	a, b := NewDeriver(secret, 1), NewDeriver([]byte(strings.Repeat("s", 32)), 1)
	if a.Node("n1", pub(1)) != b.Node("n1", pub(1)) || a.Admin() != b.Admin() {
		t.Fatalf("two derivers with the same secret and epoch disagree")
	}
	base := a.Node("n1", pub(1))
	others := map[string]creds.Key{
		"other node":   a.Node("n2", pub(1)),
		"other key":    a.Node("n1", pub(2)),
		"other epoch":  NewDeriver(secret, 2).Node("n1", pub(1)),
		"other secret": NewDeriver([]byte(strings.Repeat("t", 32)), 1).Node("n1", pub(1)),
		"admin":        a.Admin(),
		"id/key split": a.Node("n1\x00", pub(1)),
	}
	for name, k := range others {
		if k.AccessKey == base.AccessKey || k.Secret == base.Secret {
			t.Errorf("%s: key %s equals the base key in access key or secret", name, k.AccessKey)
		}
	}
	if len(base.AccessKey) != 20 || !strings.HasPrefix(base.AccessKey, "TM") || len(base.Secret) != 40 {
		t.Errorf("Node() = access key %q (%d), secret of %d characters; want 20 and 40", base.AccessKey, len(base.AccessKey), len(base.Secret))
	}
	if strings.Contains(base.Secret, string(secret)) || strings.Contains(base.AccessKey, "n1") {
		t.Errorf("derived key shows its inputs")
	}
}

// TestDerivedStoresAgree: two storage nodes of a cluster, each syncing
// its own netmap, hold the same identities; a node that leaves is revoked,
// one that joins is added, and nothing but the identities file is written.
func TestDerivedStoresAgree(t *testing.T) {
	secret := []byte(strings.Repeat("k", 40))
	d1, d2 := t.TempDir(), t.TempDir()
	s1 := creds.OpenDerived(d1, NewDeriver(secret, 1))
	s2 := creds.OpenDerived(d2, NewDeriver(secret, 1))
	members := map[string]nodekey.PublicKey{"a": pub(1), "b": pub(2)}
	now := time.Unix(1e9, 0)
	for _, s := range []*creds.Store{s1, s2} {
		gone, changed, err := s.Sync(members, now)
		if err != nil || len(gone) != 0 || !changed {
			t.Fatalf("Sync(first) = %v, %v, %v; want nothing gone, changed", gone, changed, err)
		}
	}
	// a asks s1: it gets the key s2 already has.
	e, changed, err := s1.Issue("a", "nodea", pub(1), now)
	if err != nil || changed {
		t.Fatalf("Issue(a) = %v, changed %v; want the synced key, unchanged", err, changed)
	}
	id1, err := s1.GrantedIdentities([]string{"mesh"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id2, _ := s2.GrantedIdentities([]string{"mesh"}, nil)
	if string(id1) != string(id2) || !strings.Contains(string(id2), e.Secret) {
		t.Fatalf("identities differ between the nodes, or lack a's key:\n%s\n%s", id1, id2)
	}
	if _, changed, _ := s1.Sync(members, now); changed {
		t.Errorf("Sync(same members) changed")
	}
	delete(members, "b")
	members["c"] = pub(3)
	gone, changed, err := s1.Sync(members, now)
	if err != nil || len(gone) != 1 || gone[0] != "b" || !changed {
		t.Fatalf("Sync(b left, c joined) = %v, %v, %v", gone, changed, err)
	}
	members["a"] = pub(9) // re-keyed
	gone, _, _ = s1.Sync(members, now)
	if len(gone) != 1 || gone[0] != "a" {
		t.Fatalf("Sync(a re-keyed) gone = %v, want [a]", gone)
	}
	for _, e2 := range s1.Entries() {
		if e2.NodeID == "a" && e2.Secret == e.Secret {
			t.Errorf("a kept its old secret after a new node key")
		}
	}
	ents, _ := os.ReadDir(d1)
	if len(ents) != 0 {
		t.Errorf("derived store wrote %v; want nothing until the identities file", ents)
	}
	if _, err := s1.WriteIdentities([]string{"mesh"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(d1, creds.IdentitiesFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("identities file: %v %v", fi, err)
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := strings.Repeat("x", 44)
	if b, err := LoadSecret(write("ok", good+"\n", 0o600)); err != nil || string(b) != good {
		t.Fatalf("LoadSecret(ok) = %q, %v", b, err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "cluster.secret_file: open"},
		{"short", write("short", "abc\n", 0o600), "3 bytes: want at least 32"},
		{"readable", write("wide", good, 0o644), "mode 0644: must not be readable"},
		{"directory", dir, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadSecret(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), good) {
				t.Errorf("LoadSecret(%s) = %v, want an error containing %q", tt.name, err, tt.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	nm := &api.Netmap{
		Self:  api.Node{ID: "1", Name: "store1", IP: netip.MustParseAddr("100.64.0.1")},
		Peers: []api.Node{{ID: "2", Name: "Store2", IP: netip.MustParseAddr("100.64.0.2")}},
	}
	addrs, missing, self := Resolve([]string{"store1", "store2.mesh", "100.64.0.3", "store4"}, nm)
	if len(missing) != 1 || missing[0] != "store4" || !self || len(addrs) != 3 ||
		MasterPeers(addrs, 9333) != "100.64.0.1:9333,100.64.0.2:9333,100.64.0.3:9333" {
		t.Fatalf("Resolve = %v, %v, %v", addrs, missing, self)
	}
	if err := CheckResolved([]string{"store1", "store2.mesh", "100.64.0.3"}, addrs, self, nm.Self.IP); err != nil {
		t.Errorf("CheckResolved = %v", err)
	}
	peers := []string{"store2", "100.64.0.2", "100.64.0.3"}
	addrs, _, self = Resolve(peers, nm)
	if err := CheckResolved(peers, addrs, self, nm.Self.IP); err == nil || !strings.Contains(err.Error(), `"store2" and "100.64.0.2" are the same node`) {
		t.Errorf("CheckResolved(duplicate) = %v", err)
	}
	peers = []string{"store2", "100.64.0.3", "100.64.0.4"}
	addrs, _, self = Resolve(peers, nm)
	if err := CheckResolved(peers, addrs, self, nm.Self.IP); err == nil || !strings.Contains(err.Error(), "this node (100.64.0.1) is not listed") {
		t.Errorf("CheckResolved(without self) = %v", err)
	}
}

func TestCreateSecretOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "cluster.secret")
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- CreateSecret(path) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("CreateSecret = %v", err)
		}
	}
	first, err := LoadSecret(path)
	if err != nil {
		t.Fatalf("LoadSecret(created) = %v", err)
	}
	if err := CreateSecret(path); err != nil {
		t.Fatal(err)
	}
	again, _ := LoadSecret(path)
	if string(first) != string(again) {
		t.Errorf("CreateSecret replaced an existing secret")
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want the secret only", len(ents))
	}
}
