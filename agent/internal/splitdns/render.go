package splitdns

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// maxNS is how many nameserver lines glibc (MAXNS) and Go's resolver use;
// later ones are ignored.
const maxNS = 3

// meshTimeout is the per-server timeout written into resolv.conf, in
// seconds. glibc's default of 5 s would stall every lookup on the machine
// for 5 s while the mesh DNS servers are unreachable, before falling back
// to the original servers; 1 s is ample for a server on the mesh. An
// "options timeout:" line in the original file comes later and wins.
const meshTimeout = 1

// render returns the resolv.conf to write: a header, the mesh servers, the
// timeout option, then orig line by line. Lines of orig are kept verbatim
// except "options" lines holding "rotate", which would send mesh names to
// the original servers; the word is dropped and the line kept as a
// comment. When orig has servers of its own, at most maxNS-1 mesh servers
// are written, so that glibc still sees the first original server as a
// fallback.
func render(orig []byte, cfg Config, backupPath string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by tunnelmesh: the mesh DNS servers come first; they answer %s\n", cfg.Zone)
	b.WriteString("# and the mesh's reverse zones and forward every other name. The original\n")
	b.WriteString("# file follows as fallback; it is restored when tunnelmesh stops (saved in\n")
	fmt.Fprintf(&b, "# %s).\n", backupPath)
	n := maxNS
	if len(nameservers(orig)) > 0 {
		n = maxNS - 1
	}
	for i, s := range cfg.Servers {
		if i == n {
			break
		}
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	fmt.Fprintf(&b, "options timeout:%d\n", meshTimeout)
	if len(orig) == 0 {
		return b.Bytes()
	}
	b.WriteString("# --- original file ---\n")
	for line := range strings.Lines(string(orig)) {
		body := strings.TrimRight(line, "\n")
		f := strings.Fields(body)
		if len(f) == 0 || f[0] != "options" || !slices.Contains(f[1:], "rotate") {
			b.WriteString(body)
			b.WriteByte('\n')
			continue
		}
		fmt.Fprintf(&b, "# tunnelmesh dropped rotate: %s\n", body)
		var rest []string
		for _, w := range f[1:] {
			if w != "rotate" {
				rest = append(rest, w)
			}
		}
		if len(rest) > 0 {
			fmt.Fprintf(&b, "options %s\n", strings.Join(rest, " "))
		}
	}
	return b.Bytes()
}

// nameservers returns the addresses of the nameserver lines of a
// resolv.conf, in order, as written.
func nameservers(b []byte) []string {
	var out []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}
