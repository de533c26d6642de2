package policy

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

const storagePolicy = `tags: [web, backup]
groups:
  ops: [alice, tag:backup]
storage:
  buckets:
    mesh: {read: "*", write: "*", list: "*"}
    logs:
      write: [tag:web]
      read: [group:ops]
      list: group:ops
    backups:
      read: [group:ops]
      write: [tag:backup]
test_nodes:
  web1: [tag:web]
  phone: []
  nas: [tag:backup]
tests:
  - name: web1 writes logs
    from: web1
    storage_accept: [write:logs, read:mesh]
    storage_deny: [read:logs, list:logs]
  - name: phone cannot read backups
    from: phone
    storage_deny: [read:backups, write:backups, write:logs]
    storage_accept: [write:mesh]
  - name: the nas backs up
    from: nas
    storage_accept: [write:backups, read:backups, read:logs, list:logs]
`

func TestStorageGrants(t *testing.T) {
	pol, err := Parse("p.yaml", []byte(storagePolicy))
	if err != nil {
		t.Fatal(err)
	}
	if err := pol.Check(nil); err != nil {
		t.Errorf("Check = %v, want every test to pass", err)
	}
	var got []string
	for _, r := range pol.RunTests(nil) {
		got = append(got, r.String())
	}
	for _, want := range []string{
		"PASS  web1 writes logs: web1 can write bucket logs (allowed by grant storage.buckets.logs.write)",
		"PASS  phone cannot read backups: phone cannot read bucket backups (no grant allows it)",
	} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("RunTests lacks %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
	for _, tc := range []struct {
		node api.Node
		want string
	}{
		{api.Node{Name: "web1", Tags: []string{"web"}}, "Read:mesh Write:logs Write:mesh List:mesh"},
		{api.Node{Name: "Alice"}, "List:logs List:mesh Read:backups Read:logs Read:mesh Write:mesh"},
		{api.Node{Name: "nas", Tags: []string{"tag:backup"}}, "List:logs List:mesh Read:backups Read:logs Read:mesh Write:backups Write:mesh"},
		{api.Node{Name: "phone"}, "List:mesh Read:mesh Write:mesh"},
	} {
		if got := strings.Join(pol.StorageActions(tc.node), " "); got != sortedWords(tc.want) {
			t.Errorf("StorageActions(%s) = %q, want %q", tc.node.Name, got, sortedWords(tc.want))
		}
	}
}

func sortedWords(s string) string {
	w := strings.Fields(s)
	for i := range w {
		for j := i + 1; j < len(w); j++ {
			if w[j] < w[i] {
				w[i], w[j] = w[j], w[i]
			}
		}
	}
	return strings.Join(w, " ")
}

// TestStorageDefault: without a storage section every member may read,
// write and list bucket mesh, and nothing else.
func TestStorageDefault(t *testing.T) {
	pol, err := Parse("p.yaml", []byte("tests:\n  - {from: a, storage_accept: [read:mesh, write:mesh, list:mesh], storage_deny: [read:other]}\ntest_nodes:\n  a: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pol.Check(nil); err != nil {
		t.Errorf("Check = %v", err)
	}
	if got := strings.Join(pol.StorageActions(api.Node{Name: "x"}), " "); got != "List:mesh Read:mesh Write:mesh" {
		t.Errorf("StorageActions = %q, want the default bucket mesh", got)
	}
	// A storage section replaces the default: mesh is no longer granted.
	pol, err = Parse("p.yaml", []byte("storage:\n  buckets:\n    logs: {read: '*'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pol.StorageAllowed(api.Node{Name: "x"}, StorageWrite, "mesh"); ok {
		t.Errorf("a storage section without mesh still grants it")
	}
}

// TestStorageTestFailures: a failing storage test names the node, the
// action, the bucket and the grant at the target's line.
func TestStorageTestFailures(t *testing.T) {
	src := strings.Replace(storagePolicy, "storage_deny: [read:backups, write:backups, write:logs]", "storage_deny: [write:mesh]\n    storage_accept: [read:backups]", 1)
	src = strings.Replace(src, "    storage_accept: [write:mesh]\n", "", 1)
	pol, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	err = pol.Check(nil)
	want := `p.yaml:26: test "phone cannot read backups" failed: phone should be able to read bucket backups but no grant allows it
p.yaml:25: test "phone cannot read backups" failed: phone should not be able to write bucket mesh but grant storage.buckets.mesh.write allows it`
	if err == nil || err.Error() != want {
		t.Errorf("Check =\n%v\nwant\n%s", err, want)
	}
}

func TestStorageParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"bad bucket", "storage:\n  buckets:\n    Logs: {read: '*'}\n", `p.yaml:3: storage.buckets.Logs: bucket name "Logs": only lowercase letters`},
		{"short bucket", "storage:\n  buckets:\n    x: {read: '*'}\n", `p.yaml:3: storage.buckets.x: bucket name "x": want 3 to 63 characters`},
		{"unknown action", "storage:\n  buckets:\n    logs: {delete: '*'}\n", `p.yaml:3: storage.buckets.logs.delete: unknown key (known keys: read, write, list)`},
		{"no grants", "storage:\n  buckets:\n    logs: {}\n", `p.yaml:3: storage.buckets.logs: grants nothing`},
		{"empty list", "storage:\n  buckets:\n    logs: {read: []}\n", `p.yaml:3: storage.buckets.logs.read: must name at least one node, tag or group`},
		{"undeclared tag", "storage:\n  buckets:\n    logs:\n      read: [tag:web]\n", `p.yaml:4: storage.buckets.logs.read[0]: tag "web" is not declared under tags`},
		{"no buckets", "storage: {}\n", `p.yaml:1: storage: missing "buckets"`},
		{"unknown key", "storage:\n  bucket: {}\n", `p.yaml:2: storage.bucket: unknown key (known keys: buckets)`},
		{"bad storage target", "tests:\n  - {from: a, storage_accept: [delete:logs]}\n", `invalid storage target "delete:logs": want read:BUCKET, write:BUCKET or list:BUCKET`},
		{"bad target bucket", "tests:\n  - {from: a, storage_deny: ['read:a/b']}\n", `invalid storage target "read:a/b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) error = %v, want it to contain %q", tc.src, err, tc.want)
			}
		})
	}
}

// TestCompileStorage: a node publishing the storage credentials API gets
// every member's grants as SeaweedFS actions; other nodes get none.
func TestCompileStorage(t *testing.T) {
	pol, err := Parse("p.yaml", []byte(storagePolicy))
	if err != nil {
		t.Fatal(err)
	}
	nodes := []api.Node{
		{Name: "store1", IP: netip.MustParseAddr("100.64.0.1"), Services: []api.Service{{Name: api.ServiceStorageAuth, Protocol: "tcp", Port: api.StorageAuthPort}}},
		{Name: "Web1", IP: netip.MustParseAddr("100.64.0.2"), Tags: []string{"web"}},
		{Name: "nas", IP: netip.MustParseAddr("100.64.0.3"), Tags: []string{"backup"}},
	}
	out := Compile(pol, nodes, 7)
	b, _ := json.Marshal(out["store1"].Storage)
	want := `{"nodes":{"nas":["List:logs","List:mesh","Read:backups","Read:logs","Read:mesh","Write:backups","Write:mesh"],` +
		`"store1":["List:mesh","Read:mesh","Write:mesh"],"web1":["List:mesh","Read:mesh","Write:logs","Write:mesh"]}}`
	if string(b) != want {
		t.Errorf("store1's Filter.Storage = %s, want %s", b, want)
	}
	// A policy granting nothing still tells the storage node so.
	none, err := Parse("p.yaml", []byte("storage:\n  buckets:\n    logs: {read: [nobody]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(Compile(none, nodes, 1)["store1"].Storage); string(b) != `{"nodes":{}}` {
		t.Errorf("grants of a policy granting nothing = %s, want {\"nodes\":{}}", b)
	}
	if out["web1"].Storage != nil || out["nas"].Storage != nil {
		t.Errorf("nodes without the storage service got grants: %v %v", out["web1"].Storage, out["nas"].Storage)
	}
	// No storage section: the default bucket for every member.
	def, err := Parse("p.yaml", []byte("rules: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := Compile(def, nodes, 1)["store1"].Storage.Nodes["nas"]; strings.Join(got, " ") != "List:mesh Read:mesh Write:mesh" {
		t.Errorf("default grants of nas = %v", got)
	}
}
