package policy

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// nfsNodes are testdata/nodes.json's nodes plus an NFS server and build1.
func nfsNodes(t *testing.T) []api.Node {
	return append(loadNodes(t),
		api.Node{Name: "files", IP: netip.MustParseAddr("100.64.0.20"), Tags: []string{"nfs"},
			Services: []api.Service{{Name: api.ServiceNFS, Protocol: "tcp", Port: 2049}}},
		api.Node{Name: "Build1", IP: netip.MustParseAddr("100.64.0.21"), Tags: []string{"tag:ci"}},
		api.Node{Name: "backup1", IP: netip.MustParseAddr("100.64.0.22")},
		api.Node{Name: "alice", IP: netip.MustParseAddr("100.64.0.23")},
	)
}

// TestNFSGolden compiles testdata/nfs/nfs.yaml: the NFS server's filter
// carries every member's grants, no other node gets any, and the file's
// own tests pass.
func TestNFSGolden(t *testing.T) {
	pol := mustParseFile(t, "testdata/nfs/nfs.yaml")
	if err := pol.Check(nil); err != nil {
		t.Errorf("Check = %v, want every test to pass", err)
	}
	nodes := nfsNodes(t)
	out := Compile(pol, nodes, 7)
	got, err := json.MarshalIndent(out["files"].NFS, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/nfs/nfs.golden", append(got, '\n'))
	for name, f := range out {
		if name != "files" && f.NFS != nil {
			t.Errorf("%s publishes no nfs but got grants %v", name, f.NFS)
		}
	}
	// The compiled grants agree with the policy's own evaluation.
	for _, n := range nodes {
		for _, e := range []string{"artifacts", "backups", "shared", "other"} {
			want, _ := pol.NFSLevel(n, e)
			if got := out["files"].NFS.Level(n.Name, e); got != want {
				t.Errorf("compiled grant of %s on %s = %q, NFSLevel says %q", n.Name, e, got, want)
			}
		}
	}
}

func TestNFSTestResults(t *testing.T) {
	pol := mustParseFile(t, "testdata/nfs/nfs.yaml")
	var got []string
	for _, r := range pol.RunTests(nil) {
		got = append(got, r.String())
	}
	for _, want := range []string{
		"PASS  build1 can write export artifacts: build1 can write export artifacts (allowed by grant nfs.exports.artifacts.read_write)",
		"PASS  phone cannot mount export backups: phone cannot mount export backups (no grant allows it)",
		"PASS  phone cannot mount export backups: phone can mount export artifacts (allowed by grant nfs.exports.artifacts.read_only)",
		"PASS  admins read backups, write nothing there: laptop cannot write export backups (no grant allows it)",
	} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("RunTests lacks %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
}

// TestNFSTestFailures: a failing nfs test names the node, the action, the
// export and the grant, at the target's line.
func TestNFSTestFailures(t *testing.T) {
	src := `tags: [ci]
nfs:
  exports:
    artifacts: {read_write: [tag:ci], read_only: ["*"]}
test_nodes:
  build1: [tag:ci]
  phone: []
tests:
  - name: phone
    from: phone
    nfs_deny: mount:artifacts
    nfs_accept: write:artifacts
  - {name: ghost, from: ghost, nfs_accept: mount:artifacts}
`
	pol, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	// Accept targets come first, as for storage tests.
	want := `p.yaml:12: test "phone" failed: phone should be able to write export artifacts but no grant allows it
p.yaml:11: test "phone" failed: phone should not be able to mount export artifacts but grant nfs.exports.artifacts.read_only allows it
p.yaml:13: test "ghost": node "ghost" is neither in the mesh nor under test_nodes`
	if err := pol.Check(nil); err == nil || err.Error() != want {
		t.Errorf("Check =\n%v\nwant\n%s", err, want)
	}
}

func TestNFSParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"bad export name", "nfs:\n  exports:\n    .hidden: {read_only: '*'}\n", `p.yaml:3: nfs.exports..hidden: export name ".hidden": want 1 to 63 letters, digits, '.', '_' or '-', not starting with '.'`},
		{"slash in name", "nfs:\n  exports:\n    a/b: {read_only: '*'}\n", `p.yaml:3: nfs.exports.a/b: export name "a/b"`},
		{"unknown level", "nfs:\n  exports:\n    shared: {rw: '*'}\n", `p.yaml:3: nfs.exports.shared.rw: unknown key (known keys: read_write, read_only)`},
		{"no grants", "nfs:\n  exports:\n    shared: {}\n", `p.yaml:3: nfs.exports.shared: grants nothing: name read_write or read_only`},
		{"empty list", "nfs:\n  exports:\n    shared: {read_only: []}\n", `p.yaml:3: nfs.exports.shared.read_only: must name at least one node, tag or group`},
		{"undeclared tag", "nfs:\n  exports:\n    shared:\n      read_write: [tag:ci]\n", `p.yaml:4: nfs.exports.shared.read_write[0]: tag "ci" is not declared under tags`},
		{"undefined group", "nfs:\n  exports:\n    shared:\n      read_write: group:devs\n", `p.yaml:4: nfs.exports.shared.read_write: group "devs" is not defined under groups`},
		{"bad selector", "nfs:\n  exports:\n    shared: {read_only: [host:a]}\n", `p.yaml:3: nfs.exports.shared.read_only[0]: invalid selector "host:a": want *, a node name, tag:NAME or group:NAME`},
		{"not a mapping", "nfs:\n  exports:\n    shared: [a]\n", `p.yaml:3: nfs.exports.shared: must be a mapping, not a list`},
		{"no exports", "nfs: {}\n", `p.yaml:1: nfs: missing "exports"`},
		{"unknown key", "nfs:\n  export: {}\n", `p.yaml:2: nfs.export: unknown key (known keys: exports)`},
		{"bad nfs target", "tests:\n  - {from: a, nfs_accept: [read:shared]}\n", `p.yaml:2: tests[0].nfs_accept[0]: invalid nfs target "read:shared": want mount:EXPORT or write:EXPORT`},
		{"bad target export", "tests:\n  - {from: a, nfs_deny: 'mount:a/b'}\n", `p.yaml:2: tests[0].nfs_deny: invalid nfs target "mount:a/b": export name "a/b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) error = %v, want it to contain %q", tc.src, err, tc.want)
			}
		})
	}
}

// TestCompileNFS: without an nfs section no node gets nfs grants (nfsd's
// own configuration decides); with one, a section granting nothing still
// tells the NFS server so.
func TestCompileNFS(t *testing.T) {
	nodes := nfsNodes(t)
	def, err := Parse("p.yaml", DefaultYAML)
	if err != nil {
		t.Fatal(err)
	}
	if g := Compile(def, nodes, 1)["files"].NFS; g != nil {
		t.Errorf("the default policy (no nfs section) compiled nfs grants %v", g)
	}
	none, err := Parse("p.yaml", []byte("nfs:\n  exports:\n    shared: {read_only: [nobody]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(Compile(none, nodes, 1)["files"].NFS); string(b) != `{"nodes":{}}` {
		t.Errorf("grants of a section granting nothing = %s, want {\"nodes\":{}}", b)
	}
}

func TestIsExportName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"data", true},
		{"-x_1.2", true},
		{"a.", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{".hidden", false},
		{"a/b", false},
		{"a b", false},
		{"ü", false},
	} {
		if got := isExportName(tc.in); got != tc.want {
			t.Errorf("isExportName(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
