package state

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

func sample(keyFile string) Node {
	return Node{
		Coordinator: "https://127.0.0.1:8443",
		Pin:         "pin",
		NodeID:      "n1",
		Name:        "alpha",
		IP:          netip.MustParseAddr("100.64.0.1"),
		MeshID:      "m1",
		MeshCIDR:    netip.MustParsePrefix("100.64.0.0/10"),
		PSK:         make([]byte, 32),
		Credential:  "n1.c2VjcmV0",
		KeyFile:     keyFile,
		Interface:   "tm1",
		Registries:  []string{"https://127.0.0.1:8443", "https://127.0.0.2:8443"},
	}
}

func TestSaveLoadNode(t *testing.T) {
	d := Dir(filepath.Join(t.TempDir(), "st"))
	if _, err := d.LoadNode(); !errors.Is(err, ErrNotJoined) {
		t.Fatalf("LoadNode(empty) = %v, want ErrNotJoined", err)
	}
	key, keyPath, err := d.LoadKey("")
	if err != nil {
		t.Fatalf("LoadKey: %v", err)
	}
	key2, _, err := d.LoadKey("")
	if err != nil || key2.Public() != key.Public() {
		t.Fatalf("LoadKey again = %v, %v; want the same key", key2.Public(), err)
	}
	n := sample(keyPath)
	if err := d.SaveNode(n); err != nil {
		t.Fatalf("SaveNode: %v", err)
	}
	for _, f := range []string{NodeFile, CredentialsFile, KeyFile} {
		st, err := os.Stat(d.Path(f))
		if err != nil {
			t.Fatalf("stat %s: %v", f, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(string(d)); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", st.Mode().Perm())
	}
	got, err := d.LoadNode()
	if err != nil {
		t.Fatalf("LoadNode: %v", err)
	}
	if got.Name != n.Name || got.IP != n.IP || got.Credential != n.Credential || got.Interface != "tm1" || string(got.PSK) != string(n.PSK) ||
		!slices.Equal(got.Registries, n.Registries) {
		t.Fatalf("LoadNode = %+v, want %+v", got, n)
	}
	c, err := regclient.LoadCredentials(d.Path(CredentialsFile))
	if err != nil {
		t.Fatalf("LoadCredentials: %v", err)
	}
	if c.Key.Public() != key.Public() || c.Credential != n.Credential || !slices.Equal(c.Registries, n.Registries) {
		t.Fatalf("credentials file does not name the node's key, credential and registry replicas")
	}
}

func TestSaveNodeRejectsBad(t *testing.T) {
	d := Dir(t.TempDir())
	tests := []struct {
		name, want string
		edit       func(*Node)
	}{
		{"psk", "psk:", func(n *Node) { n.PSK = []byte{1} }},
		{"ip", "ip:", func(n *Node) { n.IP = netip.MustParseAddr("10.0.0.1") }},
		{"cidr", "mesh_cidr:", func(n *Node) { n.MeshCIDR = netip.Prefix{} }},
		{"credential", "credential:", func(n *Node) { n.Credential = "nodot" }},
		{"name", "name:", func(n *Node) { n.Name = "" }},
		{"registry url", "registries[1]:", func(n *Node) { n.Registries = []string{"https://a:1", "http://b:2"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := sample("/k")
			tt.edit(&n)
			if err := d.SaveNode(n); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SaveNode = %v, want error containing %q", err, tt.want)
			}
			if _, err := os.Stat(d.Path(NodeFile)); err == nil {
				t.Fatalf("bad node was written")
			}
		})
	}
}

func TestLoadKeyExisting(t *testing.T) {
	k, _ := nodekey.Generate()
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := k.Save(p); err != nil {
		t.Fatal(err)
	}
	d := Dir(t.TempDir())
	got, path, err := d.LoadKey(p)
	if err != nil || got.Public() != k.Public() || path != p {
		t.Fatalf("LoadKey(%s) = %v, %s, %v", p, got.Public(), path, err)
	}
	if _, _, err := d.LoadKey(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatalf("LoadKey(missing) succeeded, want error")
	}
	if _, err := os.Stat(d.Path(KeyFile)); err == nil {
		t.Fatalf("LoadKey(--key) generated node.key")
	}
}

func TestLock(t *testing.T) {
	d := Dir(t.TempDir())
	release, err := d.Lock()
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if _, err := d.Lock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock = %v, want ErrLocked", err)
	}
	release()
	r2, err := d.Lock()
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	r2()
}
