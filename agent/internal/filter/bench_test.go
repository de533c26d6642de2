package filter

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// benchFilter builds a filter with nRules rules over a mesh of 2,000 nodes
// (each rule: 20 source nodes, tcp or udp, one to three port ranges) and
// nFlows flows the node opened to random peers.
func benchFilter(b *testing.B, nRules, nFlows int) (*Filter, [][]byte) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	node := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}) }
	const meshSize = 2000
	af := &api.Filter{PolicyVersion: 1}
	for i := range nRules {
		r := api.FilterRule{Name: "rule-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)), Protocol: "tcp"}
		if i%3 == 0 {
			r.Protocol = "udp"
		}
		for range 20 {
			r.Sources = append(r.Sources, netip.PrefixFrom(node(2+rng.IntN(meshSize)), 32))
		}
		for range 1 + rng.IntN(3) {
			first := uint16(1 + rng.IntN(60000))
			r.Ports = append(r.Ports, api.PortRange{First: first, Last: first + uint16(rng.IntN(100))})
		}
		af.Rules = append(af.Rules, r)
	}
	f := New(Config{Self: selfAddr})
	if err := f.SetFilter(af); err != nil {
		b.Fatal(err)
	}
	selfIP := "100.64.0.1"
	var flows [][]byte
	for i := range nFlows {
		peer := node(2 + rng.IntN(meshSize)).String()
		sport := uint16(1024 + i%60000)
		dport := uint16(1 + rng.IntN(65000))
		outbound(f, tcp(selfIP, peer, sport, dport, syn))
		if i%(nFlows/100) == 0 {
			flows = append(flows, tcp(peer, selfIP, dport, sport, ack))
		}
	}
	if n := f.Stats().Flows; n < nFlows*9/10 {
		b.Fatalf("only %d flows tracked", n)
	}
	// An allowed packet per tenth rule, for the rule-hit case.
	var hits [][]byte
	for i := 0; i < nRules; i += 10 {
		r := af.Rules[i]
		src := r.Sources[0].Addr().String()
		if r.Protocol == "udp" {
			hits = append(hits, udp(src, selfIP, 40000, r.Ports[0].First))
		} else {
			hits = append(hits, tcp(src, selfIP, 40000, r.Ports[0].First, ack))
		}
	}
	return f, append(flows, hits...)
}

// BenchmarkFilter is the filter alone at 1,000 rules and 100,000 tracked
// connections:
//
//	go test ./agent/internal/filter -run XXX -bench Filter -benchmem
func BenchmarkFilter(b *testing.B) {
	f, pkts := benchFilter(b, 1000, 100_000)
	established := pkts[:100]
	hits := pkts[100:]
	for _, p := range established {
		if !inbound(f, p) {
			b.Fatal("established packet dropped")
		}
	}
	for _, p := range hits {
		if !inbound(f, p) {
			b.Fatal("rule-allowed packet dropped")
		}
	}
	denied := tcp("100.64.9.9", "100.64.0.1", 1, 2, syn)
	out := tcp("100.64.0.1", "100.64.3.3", 2222, 443, ack)
	outbound(f, tcp("100.64.0.1", "100.64.3.3", 2222, 443, syn))
	cases := []struct {
		name string
		fn   func(i int)
	}{
		{"inbound-established", func(i int) { inbound(f, established[i%len(established)]) }},
		{"inbound-rule", func(i int) { inbound(f, hits[i%len(hits)]) }},
		{"inbound-denied", func(int) { inbound(f, denied) }},
		{"outbound", func(int) { outbound(f, out) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.fn(i)
				i++
			}
		})
	}
	b.Run("inbound-established-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				inbound(f, established[i%len(established)])
				i++
			}
		})
	})
}
