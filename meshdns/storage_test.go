package meshdns

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func TestMeshWideStorageName(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	ms.addNode(t, "st1") // 100.64.0.2
	ms.addNode(t, "st2") // 100.64.0.3
	ms.addNode(t, "web") // 100.64.0.4
	for _, n := range []string{"st1", "st2"} {
		ms.fake.SetServices(n, api.Service{Name: api.ServiceStorage, Protocol: "tcp", Port: 9000})
	}
	ms.fake.SetServices("web", api.Service{Name: "http", Protocol: "tcp", Port: 80})
	m := startPlugin(t, ms.corefile(`meshdns mesh {
		credentials CREDS
		ttl 60
	}`))
	version := ms.fake.Version()
	waitFor(t, "netmap", func() bool { t := m.table.Load(); return t != nil && t.version == version })

	tests := []struct {
		qname  string
		qtype  uint16
		rcode  string
		answer []string
	}{
		{"storage.mesh.", dns.TypeA, "NOERROR", []string{"storage.mesh. 60 IN A 100.64.0.2", "storage.mesh. 60 IN A 100.64.0.3"}},
		{"_storage._tcp.mesh.", dns.TypeSRV, "NOERROR", []string{"_storage._tcp.mesh. 60 IN SRV 0 0 9000 st1.mesh.", "_storage._tcp.mesh. 60 IN SRV 0 0 9000 st2.mesh."}},
		{"storage.st1.mesh.", dns.TypeA, "NOERROR", []string{"storage.st1.mesh. 60 IN A 100.64.0.2"}},
		{"http.mesh.", dns.TypeA, "NXDOMAIN", nil}, // only storage is named mesh-wide
	}
	for _, tc := range tests {
		msg := query(t, m, tc.qname, tc.qtype)
		if got := dns.RcodeToString[msg.Rcode]; got != tc.rcode {
			t.Errorf("%s: rcode = %s, want %s", tc.qname, got, tc.rcode)
			continue
		}
		got := rrStrings(msg.Answer)
		want := slices.Clone(tc.answer)
		slices.Sort(want)
		if !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
			t.Errorf("%s %s = %q, want %q", tc.qname, dns.TypeToString[tc.qtype], got, want)
		}
	}
}

func TestMeshWideNameYieldsToANode(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	ms.addNode(t, "storage") // 100.64.0.2: a node with the service's name
	ms.addNode(t, "st1")     // 100.64.0.3
	ms.fake.SetServices("st1", api.Service{Name: api.ServiceStorage, Protocol: "tcp", Port: 9000})
	m := startPlugin(t, ms.corefile(`meshdns mesh {
		credentials CREDS
		ttl 60
	}`))
	version := ms.fake.Version()
	waitFor(t, "netmap", func() bool { t := m.table.Load(); return t != nil && t.version == version })
	if got := rrStrings(query(t, m, "storage.mesh.", dns.TypeA).Answer); !slices.Equal(got, []string{"storage.mesh. 60 IN A 100.64.0.2"}) {
		t.Errorf("storage.mesh A = %q, want the node named storage only", got)
	}
}
