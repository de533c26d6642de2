package splitdns

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

const header = `# Written by tunnelmesh: the mesh DNS servers come first; they answer mesh
# and the mesh's reverse zones and forward every other name. The original
# file follows as fallback; it is restored when tunnelmesh stops (saved in
# /state/resolv.conf.backup.json).
`

func TestRender(t *testing.T) {
	three := Config{Zone: "mesh", Servers: []netip.Addr{srvA, srvB, srvC}}
	for _, tc := range []struct {
		name string
		orig string
		cfg  Config
		want string
	}{
		{"empty original, three servers", "", three,
			header + "nameserver 10.0.0.3\nnameserver 10.0.0.4\nnameserver 10.0.0.5\noptions timeout:1\n"},
		{"original servers keep one slot", "nameserver 192.0.2.1\nsearch corp.example\n", three,
			header + "nameserver 10.0.0.3\nnameserver 10.0.0.4\noptions timeout:1\n# --- original file ---\nnameserver 192.0.2.1\nsearch corp.example\n"},
		{"no final newline", "# x\noptions ndots:2", cfg1,
			header + "nameserver 10.0.0.3\noptions timeout:1\n# --- original file ---\n# x\noptions ndots:2\n"},
		{"comment-only original uses three", "# nothing\n", three,
			header + "nameserver 10.0.0.3\nnameserver 10.0.0.4\nnameserver 10.0.0.5\noptions timeout:1\n# --- original file ---\n# nothing\n"},
		{"rotate dropped", "nameserver 192.0.2.1\noptions rotate timeout:3\n\toptions  rotate\n", cfg1,
			header + "nameserver 10.0.0.3\noptions timeout:1\n# --- original file ---\nnameserver 192.0.2.1\n" +
				"# tunnelmesh dropped rotate: options rotate timeout:3\noptions timeout:3\n" +
				"# tunnelmesh dropped rotate: \toptions  rotate\n"},
		{"rotate elsewhere untouched", "# options rotate\nsearch rotate\n", cfg1,
			header + "nameserver 10.0.0.3\noptions timeout:1\n# --- original file ---\n# options rotate\nsearch rotate\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(render([]byte(tc.orig), tc.cfg, "/state/resolv.conf.backup.json"))
			if got != tc.want {
				t.Errorf("render(%q) =\n%s\nwant\n%s", tc.orig, got, tc.want)
			}
		})
	}
}

func TestNameservers(t *testing.T) {
	in := "nameserver 192.0.2.1\n  nameserver\t192.0.2.2 # c\n#nameserver 192.0.2.3\nnameserver\nnameservers 192.0.2.4\n"
	if got := nameservers([]byte(in)); !slices.Equal(got, []string{"192.0.2.1", "192.0.2.2"}) {
		t.Errorf("nameservers(%q) = %q", in, got)
	}
}

// FuzzRender checks, for any original file, that the mesh servers are the
// first nameservers, that the original's first server is among the first
// maxNS, and that every original line survives unless it is an options
// line with rotate.
func FuzzRender(f *testing.F) {
	f.Add([]byte("nameserver 192.0.2.1\nsearch a b\noptions rotate ndots:2\n"))
	f.Add([]byte(""))
	f.Add([]byte("nameserver 1.1.1.1\nnameserver 8.8.8.8\nnameserver 9.9.9.9\n"))
	f.Add([]byte("\x00\r\n options\trotate"))
	f.Fuzz(func(t *testing.T, orig []byte) {
		cfg := Config{Zone: "mesh", Servers: []netip.Addr{srvA, srvB, srvC}}
		out := string(render(orig, cfg, "/s/b"))
		ns := nameservers([]byte(out))
		origNS := nameservers(orig)
		n := 3
		if len(origNS) > 0 {
			n = 2
		}
		if !slices.Equal(ns[:n], []string{"10.0.0.3", "10.0.0.4", "10.0.0.5"}[:n]) {
			t.Fatalf("first nameservers = %q", ns)
		}
		if len(origNS) > 0 && ns[n] != origNS[0] {
			t.Fatalf("nameserver %d = %q, want the original's first %q", n, ns[n], origNS[0])
		}
		for line := range strings.Lines(string(orig)) {
			line = strings.TrimRight(line, "\n")
			f := strings.Fields(line)
			if len(f) > 0 && f[0] == "options" && slices.Contains(f, "rotate") {
				if !strings.Contains(out, "# tunnelmesh dropped rotate: "+line+"\n") {
					t.Fatalf("rotate line %q not kept as a comment", line)
				}
				continue
			}
			if !strings.Contains(out, "\n"+line+"\n") {
				t.Fatalf("original line %q missing", line)
			}
		}
		for line := range strings.Lines(out) {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "options" && slices.Contains(f, "rotate") {
				t.Fatalf("rotate survives: %q", line)
			}
		}
	})
}
