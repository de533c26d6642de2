package meshdns

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// fuzzNetmap is a netmap with a node, a service and a DNS server.
var fuzzNetmap = api.Netmap{
	Version:  7,
	MeshCIDR: netip.MustParsePrefix("100.64.0.0/10"),
	Self:     api.Node{Name: "dns", IP: netip.MustParseAddr("100.64.0.1")},
	Peers: []api.Node{{Name: "db1", IP: netip.MustParseAddr("100.64.0.2"),
		Services: []api.Service{{Name: "pg", Protocol: "tcp", Port: 5432}}}},
	DNS: api.DNSConfig{Zone: "mesh", Servers: []netip.Addr{netip.MustParseAddr("100.64.0.1")}},
}

// FuzzServeDNS asks arbitrary questions (the untrusted input of a DNS
// server) and checks that every answer is well formed: it packs, answers
// the question asked, and names only records under the question's zone.
func FuzzServeDNS(f *testing.F) {
	for _, s := range []string{"db1.mesh.", "DB1.MESH.", "_pg._tcp.db1.mesh.", "mesh.", "2.0.64.100.in-addr.arpa.",
		"x.y.mesh.", ".", "a\\.b.mesh.", "\\000.mesh.", "64.100.in-addr.arpa.", "in-addr.arpa."} {
		f.Add(s, uint16(dns.TypeA))
		f.Add(s, uint16(dns.TypeANY))
	}
	m := &MeshDNS{Zones: []string{"."}, origins: map[string]struct{}{".": {}}, ttl: DefaultTTL,
		Next: test.NextHandler(dns.RcodeRefused, nil)}
	m.table.Store(buildTable(&fuzzNetmap, "", DefaultTTL))
	f.Fuzz(func(t *testing.T, name string, qtype uint16) {
		if _, ok := dns.IsDomainName(name); !ok {
			return // miekg/dns would not unpack such a question from the wire
		}
		req := new(dns.Msg)
		req.SetQuestion(dns.Fqdn(name), qtype)
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		rcode, err := m.ServeDNS(context.Background(), rec, req)
		if err != nil {
			t.Fatalf("ServeDNS(%q, %d): %v", name, qtype, err)
		}
		if rec.Msg == nil {
			if rcode != dns.RcodeRefused && rcode != dns.RcodeServerFailure {
				t.Fatalf("ServeDNS(%q, %d) wrote nothing and returned %d", name, qtype, rcode)
			}
			return
		}
		if _, err := rec.Msg.Pack(); err != nil {
			t.Fatalf("answer to %q does not pack: %v", name, err)
		}
		for _, rr := range rec.Msg.Answer {
			if !strings.EqualFold(rr.Header().Name, req.Question[0].Name) {
				t.Fatalf("answer to %q holds %s", name, rr)
			}
		}
	})
}

// FuzzBuildTable indexes arbitrary netmaps (JSON from the registry) and
// checks that every record it would serve is a valid, packable record.
func FuzzBuildTable(f *testing.F) {
	seed, _ := json.Marshal(fuzzNetmap)
	f.Add(seed)
	f.Add([]byte(`{"mesh_cidr":"10.0.0.0/30","self":{"name":"A-b","ip":"10.0.0.1"},"dns":{"zone":"Corp.Example."}}`))
	f.Add([]byte(`{"self":{"name":"x","ip":"1.2.3.4","services":[{"name":"_x","protocol":"tcp","port":1}]},"dns":{"zone":".."}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var nm api.Netmap
		if json.Unmarshal(data, &nm) != nil {
			return
		}
		tb := buildTable(&nm, "", DefaultTTL)
		if _, ok := tb.zones[tb.zone]; !ok {
			t.Fatalf("zone %q not among the table's zones", tb.zone)
		}
		for name, e := range tb.names {
			if _, ok := dns.IsDomainName(name); !ok || tb.zoneOf(name) == "" {
				t.Fatalf("name %q is not a domain name in the table's zones", name)
			}
			msg := new(dns.Msg)
			msg.Answer = append(append(append(msg.Answer, e.a...), e.srv...), e.ptr...)
			msg.Extra = e.extra
			if _, err := msg.Pack(); err != nil {
				t.Fatalf("records of %q do not pack: %v", name, err)
			}
		}
	})
}
