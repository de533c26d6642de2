package policy

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

func loadNodes(t testing.TB) []api.Node {
	t.Helper()
	data, err := os.ReadFile("testdata/nodes.json")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []api.Node
	if err := json.Unmarshal(data, &nodes); err != nil {
		t.Fatal(err)
	}
	return nodes
}

func mustParseFile(t testing.TB, path string) *Policy {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := Parse(filepath.Base(path), data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return pol
}

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestCompileGolden compiles every testdata/compile/*.yaml against
// testdata/nodes.json and compares with the .golden file beside it.
func TestCompileGolden(t *testing.T) {
	nodes := loadNodes(t)
	files, _ := filepath.Glob("testdata/compile/*.yaml")
	if len(files) == 0 {
		t.Fatal("no test policies")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			pol := mustParseFile(t, file)
			filters := Compile(pol, nodes, 7)
			got, err := json.MarshalIndent(filters, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(file, ".yaml")+".golden", append(got, '\n'))
			checkCompiled(t, pol, nodes, filters)
		})
	}
}

// checkCompiled checks the compiled filters against the policy's own
// evaluation for every pair of nodes and a spread of ports: the compiler and
// Allowed must agree on every flow.
func checkCompiled(t *testing.T, pol *Policy, nodes []api.Node, filters map[string]*api.Filter) {
	t.Helper()
	ports := []uint16{1, 22, 53, 80, 443, 514, 5353, 5432, 5433, 5440, 5441, 6000, 6432, 8080, 8081, 9100, 9150, 9999, 65535}
	for _, dst := range nodes {
		f := filters[dst.Name]
		if f == nil || f.PolicyVersion != 7 {
			t.Fatalf("filter of %s = %+v", dst.Name, f)
		}
		for _, src := range nodes {
			for _, proto := range []string{"tcp", "udp", "icmp"} {
				for _, port := range ports {
					_, want := pol.Allowed(src, dst, proto, port)
					got := filterAllows(f, src.IP, proto, port)
					if got != want {
						t.Errorf("%s -> %s %s/%d: compiled filter says %v, Allowed says %v", src.Name, dst.Name, proto, port, got, want)
					}
					if proto == "icmp" {
						break
					}
				}
			}
		}
	}
}

// filterAllows is a plain reading of the api.Filter contract.
func filterAllows(f *api.Filter, src netip.Addr, proto string, port uint16) bool {
	for _, r := range f.Rules {
		if r.Protocol != proto && r.Protocol != "any" {
			continue
		}
		in := false
		for _, p := range r.Sources {
			in = in || p.Contains(src)
		}
		if in && (proto == "icmp" || portIn(r.Ports, port)) {
			return true
		}
	}
	return false
}

func TestCompileOnlyConcerned(t *testing.T) {
	nodes := loadNodes(t)
	pol := mustParseFile(t, "example.yaml")
	filters := Compile(pol, nodes, 1)
	// phone is the destination of nothing but ping and metrics.
	var names []string
	for _, r := range filters["phone"].Rules {
		names = append(names, r.Name)
	}
	if got, want := strings.Join(names, ","), "metrics,ping"; got != want {
		t.Errorf("phone's rules = %s, want %s", got, want)
	}
	// web-to-db reaches db1 and legacy-db only.
	for name, f := range filters {
		has := false
		for _, r := range f.Rules {
			has = has || r.Name == "web-to-db"
		}
		if want := name == "db1" || name == "legacy-db"; has != want {
			t.Errorf("%s has web-to-db = %v, want %v", name, has, want)
		}
	}
}

func TestCompileNoSelfSource(t *testing.T) {
	nodes := loadNodes(t)
	pol := mustParseFile(t, "example.yaml")
	for name, f := range Compile(pol, nodes, 1) {
		var self netip.Addr
		for _, n := range nodes {
			if n.Name == name {
				self = n.IP
			}
		}
		for _, r := range f.Rules {
			for _, p := range r.Sources {
				if p.Addr() == self {
					t.Errorf("%s: rule %s lists the node itself as a source", name, r.Name)
				}
				if p.Bits() != 32 {
					t.Errorf("%s: rule %s source %v is not a /32", name, r.Name, p)
				}
			}
		}
	}
}

func TestDiffGolden(t *testing.T) {
	nodes := loadNodes(t)
	news, _ := filepath.Glob("testdata/diff/*.new.yaml")
	if len(news) == 0 {
		t.Fatal("no diff cases")
	}
	for _, nf := range news {
		base := strings.TrimSuffix(nf, ".new.yaml")
		t.Run(filepath.Base(base), func(t *testing.T) {
			var old *Policy
			if _, err := os.Stat(base + ".old.yaml"); err == nil {
				old = mustParseFile(t, base+".old.yaml")
			}
			got := FormatDiff(Diff(old, mustParseFile(t, nf), nodes))
			golden(t, base+".golden", []byte(got))
		})
	}
}

func TestDiffStable(t *testing.T) {
	nodes := loadNodes(t)
	old := mustParseFile(t, "testdata/diff/tighten.old.yaml")
	nw := mustParseFile(t, "testdata/diff/tighten.new.yaml")
	first := FormatDiff(Diff(old, nw, nodes))
	// Node order must not matter.
	rev := make([]api.Node, len(nodes))
	for i, n := range nodes {
		rev[len(nodes)-1-i] = n
	}
	for range 5 {
		if got := FormatDiff(Diff(old, nw, rev)); got != first {
			t.Fatalf("Diff is not stable:\n%s\nvs\n%s", got, first)
		}
	}
	if got := FormatDiff(Diff(nw, nw, nodes)); got != "no changes\n" {
		t.Errorf("Diff(p, p) = %q, want no changes", got)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
