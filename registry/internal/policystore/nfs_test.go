package policystore

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

const polNFS = `tags: [ci]
nfs:
  exports:
    artifacts: {read_write: [tag:ci], read_only: ["*"]}
    backups: {read_only: [admin1]}
tests:
  - {name: build1 can write export artifacts, from: build1, nfs_accept: write:artifacts}
  - {name: phone cannot mount export backups, from: phone, nfs_deny: mount:backups}
`

func nfsNodes() []api.Node {
	return []api.Node{
		{Name: "files", IP: netip.MustParseAddr("100.64.0.2"), Tags: []string{"nfs"}},
		{Name: "build1", IP: netip.MustParseAddr("100.64.0.3"), Tags: []string{"ci"}},
		{Name: "phone", IP: netip.MustParseAddr("100.64.0.4")},
	}
}

// TestNFSGrantsDelivered: the NFS server's filter carries the nfs grants
// once it publishes the service, and a new policy version replaces them.
func TestNFSGrantsDelivered(t *testing.T) {
	s, err := Open(t.TempDir(), nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := nfsNodes()
	s.SetNodes(ns)
	if _, err := s.Put([]byte(polNFS), 0, t0); err != nil {
		t.Fatalf("Put = %v", err)
	}
	if f := s.Filter(&api.Node{Name: "files"}); f.NFS != nil {
		t.Fatalf("files publishes no nfs yet, got grants %v", f.NFS)
	}
	ns[0].Services = []api.Service{{Name: api.ServiceNFS, Protocol: "tcp", Port: 2049}}
	s.SetNodes(ns)
	g := s.Filter(&api.Node{Name: "files"}).NFS
	if g.Level("build1", "artifacts") != api.NFSReadWrite || g.Level("phone", "artifacts") != api.NFSReadOnly || g.Level("phone", "backups") != "" {
		t.Fatalf("files' nfs grants = %+v", g)
	}
	revoke := strings.Replace(polNFS, "read_write: [tag:ci], ", "", 1)
	revoke = strings.Replace(revoke, "nfs_accept: write:artifacts", "nfs_deny: write:artifacts", 1)
	if _, err := s.Put([]byte(revoke), 0, t0); err != nil {
		t.Fatalf("Put(revoke) = %v", err)
	}
	if g := s.Filter(&api.Node{Name: "files"}).NFS; g.Level("build1", "artifacts") != api.NFSReadOnly {
		t.Errorf("build1's grant after the revoke = %q, want ro", g.Level("build1", "artifacts"))
	}
}

// TestNFSPutRefused: a policy whose nfs tests fail, or whose nfs section is
// invalid, is refused and changes nothing.
func TestNFSPutRefused(t *testing.T) {
	s, err := Open(t.TempDir(), nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := nfsNodes()
	ns[0].Services = []api.Service{{Name: api.ServiceNFS, Protocol: "tcp", Port: 2049}}
	s.SetNodes(ns)
	if _, err := s.Put([]byte(polNFS), 0, t0); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, doc string
		wantErr   error
		wantMsg   string
	}{
		{"failing nfs test", strings.Replace(polNFS, "backups: {read_only: [admin1]}", `backups: {read_only: ["*"]}`, 1), ErrTestsFailed,
			`test "phone cannot mount export backups" failed: phone should not be able to mount export backups but grant nfs.exports.backups.read_only allows it`},
		{"unknown key", strings.Replace(polNFS, "read_only: [admin1]", "readonly: [admin1]", 1), ErrInvalid, "nfs.exports.backups.readonly: unknown key"},
		{"bad selector", strings.Replace(polNFS, "[admin1]", "[tag:admins]", 1), ErrInvalid, `nfs.exports.backups.read_only[0]: tag "admins" is not declared under tags`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Put([]byte(tt.doc), 0, t0)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Put = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			if cur, _ := s.Current(); cur.Version != 1 {
				t.Errorf("current version = %d after a refused Put, want 1", cur.Version)
			}
			if g := s.Filter(&api.Node{Name: "files"}).NFS; g.Level("build1", "artifacts") != api.NFSReadWrite {
				t.Errorf("grants changed by a refused Put: %+v", g)
			}
		})
	}
}
