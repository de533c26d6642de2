package meshdns

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func TestAnswers(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	ms.addNode(t, "db1") // 100.64.0.2
	ms.addNode(t, "web") // 100.64.0.3
	ms.fake.SetServices("web",
		api.Service{Name: "http", Protocol: "tcp", Port: 8080},
		api.Service{Name: "Metrics", Protocol: "TCP", Port: 9100},
		api.Service{Name: "bad_name", Protocol: "tcp", Port: 1},
		api.Service{Name: "quic", Protocol: "sctp", Port: 2},
	)
	m := startPlugin(t, ms.corefile(`meshdns mesh 100.64.0.0/10 {
		credentials CREDS
		ttl 60
	}`))
	version := ms.fake.Version()
	waitFor(t, "netmap", func() bool { t := m.table.Load(); return t != nil && t.version == version })

	soa := fmt.Sprintf("mesh. 60 IN SOA dns.mesh. hostmaster.mesh. %d 7200 1800 86400 60", version)
	revSOA := fmt.Sprintf("64.100.in-addr.arpa. 60 IN SOA dns.mesh. hostmaster.mesh. %d 7200 1800 86400 60", version)
	refused := "REFUSED" // the next handler's answer: not ours
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  string
		answer []string
		ns     []string
		extra  []string
	}{
		{name: "peer A", qname: "db1.mesh.", qtype: dns.TypeA, rcode: "NOERROR",
			answer: []string{"db1.mesh. 60 IN A 100.64.0.2"}},
		{name: "self A", qname: "dns.mesh.", qtype: dns.TypeA, rcode: "NOERROR",
			answer: []string{"dns.mesh. 60 IN A 100.64.0.1"}},
		{name: "case preserved", qname: "DB1.Mesh.", qtype: dns.TypeA, rcode: "NOERROR",
			answer: []string{"DB1.Mesh. 60 IN A 100.64.0.2"}},
		{name: "AAAA is NODATA", qname: "db1.mesh.", qtype: dns.TypeAAAA, rcode: "NOERROR", ns: []string{soa}},
		{name: "MX is NODATA", qname: "web.mesh.", qtype: dns.TypeMX, rcode: "NOERROR", ns: []string{soa}},
		{name: "unknown node", qname: "nope.mesh.", qtype: dns.TypeA, rcode: "NXDOMAIN", ns: []string{soa}},
		{name: "below a node", qname: "x.db1.mesh.", qtype: dns.TypeA, rcode: "NXDOMAIN", ns: []string{soa}},
		{name: "apex SOA", qname: "mesh.", qtype: dns.TypeSOA, rcode: "NOERROR", answer: []string{soa}},
		{name: "apex NS", qname: "mesh.", qtype: dns.TypeNS, rcode: "NOERROR",
			answer: []string{"mesh. 60 IN NS dns.mesh."}, extra: []string{"dns.mesh. 60 IN A 100.64.0.1"}},
		{name: "apex A is NODATA", qname: "mesh.", qtype: dns.TypeA, rcode: "NOERROR", ns: []string{soa}},
		{name: "service A", qname: "http.web.mesh.", qtype: dns.TypeA, rcode: "NOERROR",
			answer: []string{"http.web.mesh. 60 IN A 100.64.0.3"}},
		{name: "service name lowercased", qname: "metrics.web.mesh.", qtype: dns.TypeA, rcode: "NOERROR",
			answer: []string{"metrics.web.mesh. 60 IN A 100.64.0.3"}},
		{name: "service SRV", qname: "_http._tcp.web.mesh.", qtype: dns.TypeSRV, rcode: "NOERROR",
			answer: []string{"_http._tcp.web.mesh. 60 IN SRV 0 0 8080 web.mesh."},
			extra:  []string{"web.mesh. 60 IN A 100.64.0.3"}},
		{name: "SRV proto lowercased", qname: "_metrics._tcp.web.mesh.", qtype: dns.TypeSRV, rcode: "NOERROR",
			answer: []string{"_metrics._tcp.web.mesh. 60 IN SRV 0 0 9100 web.mesh."},
			extra:  []string{"web.mesh. 60 IN A 100.64.0.3"}},
		{name: "SRV name asked for A is NODATA", qname: "_http._tcp.web.mesh.", qtype: dns.TypeA, rcode: "NOERROR", ns: []string{soa}},
		{name: "empty non-terminal", qname: "_tcp.web.mesh.", qtype: dns.TypeSRV, rcode: "NOERROR", ns: []string{soa}},
		{name: "wrong proto", qname: "_http._udp.web.mesh.", qtype: dns.TypeSRV, rcode: "NXDOMAIN", ns: []string{soa}},
		{name: "invalid service left out", qname: "_bad_name._tcp.web.mesh.", qtype: dns.TypeSRV, rcode: "NXDOMAIN", ns: []string{soa}},
		{name: "invalid protocol left out", qname: "quic.web.mesh.", qtype: dns.TypeA, rcode: "NXDOMAIN", ns: []string{soa}},
		{name: "service of another node", qname: "http.db1.mesh.", qtype: dns.TypeA, rcode: "NXDOMAIN", ns: []string{soa}},
		{name: "PTR", qname: "2.0.64.100.in-addr.arpa.", qtype: dns.TypePTR, rcode: "NOERROR",
			answer: []string{"2.0.64.100.in-addr.arpa. 60 IN PTR db1.mesh."}},
		{name: "PTR case-insensitive", qname: "3.0.64.100.IN-ADDR.ARPA.", qtype: dns.TypePTR, rcode: "NOERROR",
			answer: []string{"3.0.64.100.IN-ADDR.ARPA. 60 IN PTR web.mesh."}},
		{name: "PTR unknown address", qname: "9.0.64.100.in-addr.arpa.", qtype: dns.TypePTR, rcode: "NXDOMAIN", ns: []string{revSOA}},
		{name: "PTR name asked for A", qname: "2.0.64.100.in-addr.arpa.", qtype: dns.TypeA, rcode: "NOERROR", ns: []string{revSOA}},
		{name: "reverse non-terminal", qname: "0.64.100.in-addr.arpa.", qtype: dns.TypePTR, rcode: "NOERROR", ns: []string{revSOA}},
		{name: "reverse apex SOA", qname: "64.100.in-addr.arpa.", qtype: dns.TypeSOA, rcode: "NOERROR", answer: []string{revSOA}},
		{name: "other reverse zone of the prefix", qname: "1.0.127.100.in-addr.arpa.", qtype: dns.TypePTR, rcode: "NXDOMAIN",
			ns: []string{fmt.Sprintf("127.100.in-addr.arpa. 60 IN SOA dns.mesh. hostmaster.mesh. %d 7200 1800 86400 60", version)}},
		{name: "outside the prefix", qname: "1.0.128.100.in-addr.arpa.", qtype: dns.TypePTR, rcode: refused},
		{name: "outside the zones", qname: "example.org.", qtype: dns.TypeA, rcode: refused},
		{name: "escaped dot: one label at the root", qname: "db1\\.mesh.", qtype: dns.TypeA, rcode: refused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := query(t, m, tc.qname, tc.qtype)
			if got := dns.RcodeToString[msg.Rcode]; got != tc.rcode {
				t.Fatalf("%s %s: rcode = %s, want %s", tc.qname, dns.TypeToString[tc.qtype], got, tc.rcode)
			}
			if tc.rcode == refused {
				return
			}
			if !msg.Authoritative {
				t.Errorf("%s: AA not set", tc.qname)
			}
			for _, sec := range []struct {
				name      string
				got, want []string
			}{
				{"answer", rrStrings(msg.Answer), tc.answer},
				{"authority", rrStrings(msg.Ns), tc.ns},
				{"additional", rrStrings(msg.Extra), tc.extra},
			} {
				want := slices.Clone(sec.want)
				slices.Sort(want)
				if !slices.Equal(sec.got, want) && (len(sec.got) > 0 || len(want) > 0) {
					t.Errorf("%s %s %s = %q, want %q", tc.qname, dns.TypeToString[tc.qtype], sec.name, sec.got, want)
				}
			}
		})
	}
}

func TestUnknownNamesFallThrough(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	m := startPlugin(t, ms.corefile(`meshdns mesh {
		credentials CREDS
		fallthrough mesh
	}`))
	waitFor(t, "netmap", func() bool { return m.Ready() })
	if got := query(t, m, "nope.mesh.", dns.TypeA).Rcode; got != dns.RcodeRefused {
		t.Errorf("nope.mesh.: rcode = %s, want the next plugin's REFUSED", dns.RcodeToString[got])
	}
	// Names that exist are still answered here, NODATA included.
	if got := query(t, m, "dns.mesh.", dns.TypeAAAA); got.Rcode != dns.RcodeSuccess || len(got.Ns) != 1 {
		t.Errorf("dns.mesh. AAAA = %s with %d authority records, want NOERROR with the SOA", dns.RcodeToString[got.Rcode], len(got.Ns))
	}
}

func TestFallthroughOtherZoneKeepsNXDOMAIN(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	m := startPlugin(t, ms.corefile(`meshdns mesh 100.64.0.0/10 {
		credentials CREDS
		fallthrough 64.100.in-addr.arpa
	}`))
	waitFor(t, "netmap", func() bool { return m.Ready() })
	if got := query(t, m, "nope.mesh.", dns.TypeA).Rcode; got != dns.RcodeNameError {
		t.Errorf("nope.mesh.: rcode = %s, want NXDOMAIN", dns.RcodeToString[got])
	}
	if got := query(t, m, "9.0.64.100.in-addr.arpa.", dns.TypePTR).Rcode; got != dns.RcodeRefused {
		t.Errorf("9.0.64.100.in-addr.arpa.: rcode = %s, want the next plugin's REFUSED", dns.RcodeToString[got])
	}
}

func TestZone(t *testing.T) {
	t.Run("from the netmap", func(t *testing.T) {
		ms := newMesh(t, netip.Prefix{})
		ms.fake.SetDNS(api.DNSConfig{Zone: "Corp.Example"})
		m := startPlugin(t, ms.corefile(`meshdns . { 
			credentials CREDS
		}`))
		waitFor(t, "netmap", func() bool { return m.Ready() })
		if got := query(t, m, "dns.corp.example.", dns.TypeA); len(got.Answer) != 1 {
			t.Errorf("dns.corp.example. A: %d answers, want 1 (rcode %s)", len(got.Answer), dns.RcodeToString[got.Rcode])
		}
		if got := query(t, m, "dns.mesh.", dns.TypeA).Rcode; got != dns.RcodeRefused {
			t.Errorf("dns.mesh. A: rcode %s, want REFUSED from the next plugin (mesh. is not the zone)", dns.RcodeToString[got])
		}
		// A zone change in the netmap is followed.
		ms.fake.SetDNS(api.DNSConfig{Zone: "mesh"})
		waitFor(t, "zone change", func() bool { return query(t, m, "dns.mesh.", dns.TypeA).Rcode == dns.RcodeSuccess })
	})
	t.Run("Corefile overrides the netmap", func(t *testing.T) {
		ms := newMesh(t, netip.Prefix{})
		ms.fake.SetDNS(api.DNSConfig{Zone: "corp.example"})
		m := startPlugin(t, ms.corefile(`meshdns {
			credentials CREDS
			zone vpn.internal
		}`))
		waitFor(t, "netmap", func() bool { return m.Ready() })
		if got := query(t, m, "dns.vpn.internal.", dns.TypeA); len(got.Answer) != 1 {
			t.Errorf("dns.vpn.internal. A: %d answers, want 1 (rcode %s)", len(got.Answer), dns.RcodeToString[got.Rcode])
		}
	})
	t.Run("invalid netmap zone falls back to mesh", func(t *testing.T) {
		ms := newMesh(t, netip.Prefix{})
		ms.fake.SetDNS(api.DNSConfig{Zone: "."})
		m := startPlugin(t, ms.corefile(`meshdns {
			credentials CREDS
		}`))
		waitFor(t, "netmap", func() bool { return m.Ready() })
		if got := query(t, m, "dns.mesh.", dns.TypeA); len(got.Answer) != 1 {
			t.Errorf("dns.mesh. A: %d answers, want 1", len(got.Answer))
		}
	})
}

func TestSmallPrefixReverseZones(t *testing.T) {
	ms := newMesh(t, netip.MustParsePrefix("10.9.8.0/29")) // 10.9.8.1 is dns
	ms.addNode(t, "db1")                                   // 10.9.8.2
	m := startPlugin(t, ms.corefile(`meshdns {
		credentials CREDS
	}`))
	waitFor(t, "netmap", func() bool { t := m.table.Load(); return t != nil && t.nodes == 2 })
	if got := rrStrings(query(t, m, "2.8.9.10.in-addr.arpa.", dns.TypePTR).Answer); !slices.Equal(got, []string{"2.8.9.10.in-addr.arpa. 30 IN PTR db1.mesh."}) {
		t.Errorf("PTR 10.9.8.2 = %q", got)
	}
	// A /29 is covered by eight one-address zones: an unused address is the
	// apex of its own zone, so it exists without a PTR (NODATA).
	if got := query(t, m, "7.8.9.10.in-addr.arpa.", dns.TypePTR); got.Rcode != dns.RcodeSuccess || len(got.Answer) != 0 || len(got.Ns) != 1 || got.Ns[0].Header().Name != "7.8.9.10.in-addr.arpa." {
		t.Errorf("PTR 10.9.8.7 = %s %v %v, want NODATA with the SOA of 7.8.9.10.in-addr.arpa.", dns.RcodeToString[got.Rcode], got.Answer, got.Ns)
	}
	if got := query(t, m, "9.8.9.10.in-addr.arpa.", dns.TypePTR).Rcode; got != dns.RcodeRefused {
		t.Errorf("PTR 10.9.8.9 (outside /29): rcode %s, want REFUSED from the next plugin", dns.RcodeToString[got])
	}
}

// TestAnswersAreCopies checks that changing an answer (as cache or rewrite
// plugins do) leaves the table alone.
func TestAnswersAreCopies(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	ms.fake.SetServices("dns", api.Service{Name: "dns", Protocol: "udp", Port: 53})
	m := startPlugin(t, ms.corefile("meshdns {\ncredentials CREDS\n}"))
	waitFor(t, "netmap", func() bool { t := m.table.Load(); return t != nil && t.version == ms.fake.Version() })
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"DNS.mesh.", dns.TypeA}, {"_dns._udp.dns.mesh.", dns.TypeSRV}, {"1.0.64.100.in-addr.arpa.", dns.TypePTR}, {"mesh.", dns.TypeNS}} {
		first := query(t, m, q.name, q.qtype)
		for _, rr := range append(first.Answer, first.Extra...) {
			rr.Header().Ttl = 1
			rr.Header().Name = "changed."
		}
		again := query(t, m, q.name, q.qtype)
		for _, rr := range append(again.Answer, again.Extra...) {
			if rr.Header().Ttl != DefaultTTL || rr.Header().Name == "changed." {
				t.Errorf("%s %s after changing the first answer: %s", q.name, dns.TypeToString[q.qtype], rr)
			}
		}
	}
}

// TestMeshServiceNames: <service>.<zone> answers every node that publishes
// the service and holds the tag of the same name (nfs.mesh: the NFS
// servers), unless a node has that name. A node cannot put itself into
// nfs.mesh by publishing the service: tags come only from the admin.
func TestMeshServiceNames(t *testing.T) {
	nfs := api.Service{Name: api.ServiceNFS, Protocol: "tcp", Port: 2049}
	ip := netip.MustParseAddr
	nm := &api.Netmap{Version: 3, MeshCIDR: netip.MustParsePrefix("100.64.0.0/10"),
		Self: api.Node{Name: "dns", IP: ip("100.64.0.1")},
		Peers: []api.Node{
			{Name: "files1", IP: ip("100.64.0.2"), Tags: []string{"nfs"}, Services: []api.Service{nfs}},
			{Name: "files2", IP: ip("100.64.0.3"), Tags: []string{"nfs", "ci"}, Services: []api.Service{nfs, {Name: "NFS", Protocol: "udp", Port: 2049}}},
			{Name: "rogue", IP: ip("100.64.0.6"), Services: []api.Service{nfs}}, // publishes nfs without the tag
			{Name: "http", IP: ip("100.64.0.4"), Tags: []string{"http"}},
			{Name: "web", IP: ip("100.64.0.5"), Tags: []string{"http"}, Services: []api.Service{{Name: "http", Protocol: "tcp", Port: 80}}},
		}}
	tb := buildTable(nm, "", 60)
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"nfs.mesh.", []string{"nfs.mesh.\t60\tIN\tA\t100.64.0.2", "nfs.mesh.\t60\tIN\tA\t100.64.0.3"}},
		{"nfs.rogue.mesh.", []string{"nfs.rogue.mesh.\t60\tIN\tA\t100.64.0.6"}}, // its own name only
		{"http.mesh.", []string{"http.mesh.\t60\tIN\tA\t100.64.0.4"}},           // the node, not web's service
	} {
		e := tb.names[tc.name]
		var got []string
		if e != nil {
			for _, rr := range e.a {
				got = append(got, rr.String())
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s A = %q, want %q", tc.name, got, tc.want)
		}
	}
	nm.Peers = nm.Peers[2:]
	if e := buildTable(nm, "", 60).names["nfs.mesh."]; e != nil && len(e.a) > 0 {
		t.Errorf("nfs.mesh with no tagged NFS server: %v", e.a)
	}
}
