package meshdns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	_ "github.com/coredns/coredns/plugin/hosts"
)

// BenchmarkServeDNS compares meshdns's ServeDNS with the hosts plugin's on
// the same 1001 names (A queries, round robin), in process. The hosts
// entries are inline (a file is only read at OnStartup, which a test
// controller does not run); lookups go through the same code.
func BenchmarkServeDNS(b *testing.B) {
	ms := newMesh(b, netip.Prefix{})
	for i := range 1000 {
		ms.addNode(b, fmt.Sprintf("node%05d", i))
	}
	var names []string
	var hostsFile strings.Builder
	for _, n := range ms.fake.Nodes() {
		names = append(names, n.Name+".mesh.")
		fmt.Fprintf(&hostsFile, "%s %s.mesh\n", n.IP, n.Name)
	}

	handlers := map[string]plugin.Handler{
		"hosts":   newHandler(b, fmt.Sprintf("hosts /dev/null mesh {\nttl 30\n%s}", hostsFile.String())),
		"meshdns": newHandler(b, ms.corefile("meshdns mesh {\ncredentials CREDS\n}")),
	}
	m := handlers["meshdns"].(*MeshDNS)
	if err := m.OnStartup(); err != nil {
		b.Fatal(err)
	}
	defer m.OnShutdown()
	waitFor(b, "netmap", func() bool { t := m.table.Load(); return t != nil && t.nodes == len(names) })
	for _, name := range []string{"hosts", "meshdns"} {
		h := handlers[name]
		b.Run(name, func(b *testing.B) {
			reqs := make([]*dns.Msg, len(names))
			for i, n := range names {
				reqs[i] = new(dns.Msg).SetQuestion(n, dns.TypeA)
			}
			w := &test.ResponseWriter{}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				rec := dnstest.NewRecorder(w)
				if _, err := h.ServeDNS(ctx, rec, reqs[i%len(reqs)]); err != nil || len(rec.Msg.Answer) != 1 {
					b.Fatalf("%s: %v %v", names[i%len(names)], err, rec.Msg)
				}
				i++
			}
		})
	}
}

// newHandler runs a plugin's setup on input and returns its handler.
func newHandler(b *testing.B, input string) plugin.Handler {
	c := caddy.NewTestController("dns", input)
	c.ServerBlockKeys = []string{"mesh."}
	name := strings.Fields(input)[0]
	setup, err := caddy.DirectiveAction("dns", name)
	if err != nil {
		b.Fatal(err)
	}
	if err := setup(c); err != nil {
		b.Fatal(err)
	}
	cfg := dnsserver.GetConfig(c)
	return cfg.Plugin[len(cfg.Plugin)-1](test.NextHandler(dns.RcodeRefused, nil))
}
