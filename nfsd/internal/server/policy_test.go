package server

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/config"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/identity"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// withGrants is testNetmap with the policy's nfs grants in the filter.
func withGrants(version uint64, g map[string]map[string]string, without ...string) *api.Netmap {
	nm := testNetmap(version, without...)
	nm.Filter = &api.Filter{PolicyVersion: version, Rules: []api.FilterRule{}, NFS: &api.NFSGrants{Nodes: g}}
	return nm
}

func TestLevelOf(t *testing.T) {
	build1 := &identity.Node{Name: "build1", Tags: []string{"ci"}}
	phone := &identity.Node{Name: "phone"}
	listed := &export{name: "shared", rw: []string{"build1"}, ro: []string{"*"}}
	unlisted := &export{name: "shared"}
	roExport := &export{name: "shared", readOnly: true}
	grants := &api.NFSGrants{Nodes: map[string]map[string]string{
		"build1": {"shared": api.NFSReadWrite},
		"phone":  {"shared": api.NFSReadWrite, "other": api.NFSReadWrite},
	}}
	roGrants := &api.NFSGrants{Nodes: map[string]map[string]string{"build1": {"shared": api.NFSReadOnly}}}
	for _, tc := range []struct {
		name string
		e    *export
		n    *identity.Node
		g    *api.NFSGrants
		want Level
	}{
		{"no nfs section: allow lists decide", listed, build1, nil, ReadWrite},
		{"no nfs section: allow lists decide (ro)", listed, phone, nil, ReadOnly},
		{"no nfs section, no allow list: nobody", unlisted, build1, nil, None},
		{"policy grant, no allow list", unlisted, phone, grants, ReadWrite},
		{"policy grant narrowed by the allow list", listed, phone, grants, ReadOnly},
		{"allow list cannot widen the policy", listed, build1, roGrants, ReadOnly},
		{"allow list cannot grant what the policy does not", listed, phone, roGrants, None},
		{"empty nfs section grants nothing", listed, build1, &api.NFSGrants{}, None},
		{"read-only export caps the policy", roExport, phone, grants, ReadOnly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.e.levelOf(tc.n, tc.g); got != tc.want {
				t.Errorf("levelOf(%s) = %v, want %v", tc.n.Name, got, tc.want)
			}
		})
	}
}

// TestPolicyGrantsLive: the policy's nfs grants arrive with the netmap and
// apply at once, on MOUNT, on EXPORT and on every request of a mount that
// is already open.
func TestPolicyGrantsLive(t *testing.T) {
	f := newFixture(t)
	// shared without an allow list: the policy alone decides.
	f.stop()
	f.cfg.Exports[0].Allow = config.Allow{}
	f.start()
	if err := os.WriteFile(filepath.Join(f.shared, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	phone := f.listen(ipPhone)

	// No nfs section and no allow list: nobody mounts shared.
	if _, err := mount(t, phone, "shared"); err == nil {
		t.Fatal("phone mounted shared with no grant anywhere")
	}

	f.ids.Apply(withGrants(2, map[string]map[string]string{"phone": {"shared": api.NFSReadWrite}}))
	v := mustMount(t, phone, "shared")
	writeFile(t, v, "by-phone", []byte("hello"))
	if got, _ := dialRaw(t, phone).exportList(); !slices.Equal(got, []string{"/shared"}) {
		t.Errorf("EXPORT for phone = %q, want [/shared]", got)
	}

	// Downgraded to read-only: the open mount reads, no longer writes.
	f.ids.Apply(withGrants(3, map[string]map[string]string{"phone": {"shared": api.NFSReadOnly}}))
	if got := readAll(t, v, "by-phone"); string(got) != "hello" {
		t.Errorf("read after the downgrade = %q", got)
	}
	if _, err := v.Create("refused", 0o644); err == nil {
		t.Error("create succeeded on a read-only grant")
	}

	// Revoked: the open mount's next request is refused, and so is a new mount.
	f.ids.Apply(withGrants(4, map[string]map[string]string{"build1": {"shared": api.NFSReadWrite}}))
	if _, _, err := v.Lookup("f"); err == nil {
		t.Error("the open mount still looks up files after the grant was revoked")
	}
	if _, err := mount(t, phone, "shared"); err == nil {
		t.Error("phone mounted shared after the grant was revoked")
	}
	if got, _ := dialRaw(t, phone).exportList(); len(got) != 0 {
		t.Errorf("EXPORT for phone after the revoke = %q, want none", got)
	}
	if _, err := os.Stat(filepath.Join(f.shared, "refused")); err == nil {
		t.Error("a refused create left a file")
	}
}

// TestPolicyCeiling: with an nfs section, an export's allow list narrows
// the policy's grants and never widens them.
func TestPolicyCeiling(t *testing.T) {
	f := newFixture(t)
	build1, viewer, phone := f.listen(ipBuild1), f.listen(ipViewer), f.listen(ipPhone)
	// shared allows build1 rw and tag:viewers ro; the policy gives build1
	// only ro, phone rw (not in the allow list), viewer nothing.
	f.ids.Apply(withGrants(2, map[string]map[string]string{
		"build1": {"shared": api.NFSReadOnly, "backups": api.NFSReadWrite},
		"phone":  {"shared": api.NFSReadWrite},
	}))
	v := mustMount(t, build1, "shared")
	if _, err := v.Create("x", 0o644); err == nil {
		t.Error("build1 wrote with a read-only policy grant")
	}
	if _, err := mount(t, phone, "shared"); err == nil {
		t.Error("phone mounted shared: the allow list does not name it")
	}
	if _, err := mount(t, viewer, "shared"); err == nil {
		t.Error("viewer mounted shared: the policy does not grant it")
	}
	// backups is a read-only export: a read-write grant mounts it read-only.
	b := mustMount(t, build1, "backups")
	if _, err := b.Create("x", 0o644); err == nil {
		t.Error("build1 wrote to the read-only export backups")
	}
}

// TestGrantSourceLogged: nfsd says where its grants come from, and warns
// when its node does not publish nfs (the registry then sends no grants)
// or an export has no allow list and the policy no nfs section.
func TestGrantSourceLogged(t *testing.T) {
	f := newFixture(t)
	cfg := f.cfg
	cfg.Exports = append([]config.Export(nil), cfg.Exports...)
	cfg.Exports[0].Allow = config.Allow{}
	var buf syncBuffer
	ids := identity.NewWatcher()
	srv, err := New(cfg, ids, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ids.Apply(testNetmap(1))
	for _, want := range []string{"this node does not publish the nfs service", `msg="nobody may mount the export`, "export=shared"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
	nm := withGrants(2, nil)
	nm.Self.Services = []api.Service{{Name: api.ServiceNFS, Protocol: "tcp", Port: 2049}}
	ids.Apply(nm)
	if want := "grants from the policy's nfs section"; !strings.Contains(buf.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, buf.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
