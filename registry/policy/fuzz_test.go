package policy

import (
	"os"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, every
// error must be Errors, and a policy it accepts must compile, run its tests
// and diff without panicking, with well-formed output.
func FuzzParse(f *testing.F) {
	for _, file := range []string{"example.yaml", "default.yaml", "testdata/compile/nested-groups.yaml", "testdata/diff/tighten.old.yaml", "testdata/nfs/nfs.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("groups:\n  a: [group:b]\n  b: [group:a]\n"))
	f.Add([]byte("rules:\n  - {from: a, to: b, proto: tcp, ports: [90-80]}\n"))
	f.Add([]byte("groups:\n  a: &x [n1]\n  b: *x\n"))
	f.Add([]byte("tests:\n  - {from: a, accept: [b:22/udp, c/icmp]}\n"))
	nodes := []api.Node{
		{Name: "a", IP: mustAddr("100.64.0.1"), Tags: []string{"web"}},
		{Name: "b", IP: mustAddr("100.64.0.2"), Tags: []string{"db"}},
		{Name: "n1", IP: mustAddr("100.64.0.3"), Services: []api.Service{{Name: api.ServiceNFS, Protocol: "tcp", Port: 2049}}},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pol, err := Parse("fuzz.yaml", data)
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("Parse error %T is not Errors", err)
			}
			if pol != nil {
				t.Fatal("Parse returned a policy and an error")
			}
			return
		}
		for _, fl := range Compile(pol, nodes, 1) {
			for _, r := range fl.Rules {
				if len(r.Sources) == 0 {
					t.Fatalf("rule %s without sources", r.Name)
				}
				for _, p := range r.Ports {
					if p.First == 0 || p.First > p.Last {
						t.Fatalf("rule %s: bad port range %v", r.Name, p)
					}
				}
			}
		}
		if g := Compile(pol, nodes, 1)["n1"].NFS; g != nil {
			for node, exports := range g.Nodes {
				for e, level := range exports {
					if level != api.NFSReadOnly && level != api.NFSReadWrite {
						t.Fatalf("nfs grant of %s on %s = %q", node, e, level)
					}
				}
			}
		}
		_ = pol.RunTests(nodes)
		_ = FormatDiff(Diff(nil, pol, nodes))
	})
}
