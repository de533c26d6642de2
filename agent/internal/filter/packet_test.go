package filter

import (
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		pkt   []byte
		want  Reason
		check func(p *packet) bool
	}{
		{"tcp", tcp("100.64.0.1", "100.64.0.2", 1000, 80, syn), reasonNone,
			func(p *packet) bool {
				return p.proto == protoTCP && p.sport == 1000 && p.dport == 80 && p.tcpFlags == syn && p.hasPorts
			}},
		{"udp", udp("100.64.0.1", "100.64.0.2", 53, 5353), reasonNone,
			func(p *packet) bool { return p.proto == protoUDP && p.sport == 53 && p.dport == 5353 }},
		{"icmp echo", icmp("100.64.0.1", "100.64.0.2", icmpEchoRequest, 77), reasonNone,
			func(p *packet) bool { return p.sport == 77 && p.dport == 77 && p.icmpType == icmpEchoRequest }},
		{"icmp error quoting udp", ip("100.64.0.2", "100.64.0.1", protoICMP, icmpHdr(icmpUnreachable, 0, udp("100.64.0.1", "100.64.0.2", 4000, 53)[:28])), reasonNone,
			func(p *packet) bool {
				return p.quoted.ok && p.quoted.sport == 4000 && p.quoted.dport == 53 && p.quoted.proto == protoUDP
			}},
		{"icmp error quote truncated", ip("100.64.0.2", "100.64.0.1", protoICMP, icmpHdr(icmpUnreachable, 0, udp("100.64.0.1", "100.64.0.2", 4000, 53)[:27])), reasonNone,
			func(p *packet) bool { return !p.quoted.ok }},
		{"gre", ip("100.64.0.1", "100.64.0.2", 47, nil), reasonNone,
			func(p *packet) bool { return p.proto == 47 && !p.hasPorts }},
		{"later fragment", fragment(tcp("100.64.0.1", "100.64.0.2", 1, 2, 0), 9, 3, false), reasonNone,
			func(p *packet) bool { return p.laterFrag && !p.hasPorts && p.ipID == 9 }},
		{"first fragment", fragment(udp("100.64.0.1", "100.64.0.2", 1, 2), 9, 0, true), reasonNone,
			func(p *packet) bool { return p.firstFrag && p.hasPorts }},
		{"empty", nil, DropMalformed, nil},
		{"short", []byte{0x45, 0, 0}, DropMalformed, nil},
		{"ipv6", []byte{0x60, 0, 0, 0}, DropIPv6, nil},
		{"version 5", append([]byte{0x55}, make([]byte, 30)...), DropMalformed, nil},
		{"ihl too small", func() []byte { b := udp("1.1.1.1", "2.2.2.2", 1, 2); b[0] = 0x44; return b }(), DropMalformed, nil},
		{"ihl past end", func() []byte { b := udp("1.1.1.1", "2.2.2.2", 1, 2); b[0] = 0x4f; return b }(), DropMalformed, nil},
		{"total length past end", func() []byte { b := udp("1.1.1.1", "2.2.2.2", 1, 2); b[3] += 1; return b }(), DropMalformed, nil},
		{"total length cuts transport", func() []byte { b := udp("1.1.1.1", "2.2.2.2", 1, 2); b[2], b[3] = 0, 24; return b }(), DropMalformed, nil},
		{"tiny tcp fragment", ip("1.1.1.1", "2.2.2.2", protoTCP, tcpHdr(1, 2, syn)[:8]), DropMalformed, nil},
		{"short icmp", ip("1.1.1.1", "2.2.2.2", protoICMP, []byte{8, 0, 0, 0}), DropMalformed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p packet
			if got := parse(tt.pkt, &p); got != tt.want {
				t.Fatalf("parse(%x) = %v, want %v", tt.pkt, got, tt.want)
			}
			if tt.check != nil && !tt.check(&p) {
				t.Errorf("parse(%x) = %+v, fields wrong", tt.pkt, p)
			}
		})
	}
}

// FuzzFilter feeds arbitrary bytes to the parser and to both directions of
// a filter with rules: nothing may panic, and a packet the parser refuses
// must not pass.
func FuzzFilter(f *testing.F) {
	f.Add(tcp("100.64.0.1", "100.64.0.2", 1000, 80, syn))
	f.Add(udp("100.64.0.1", "100.64.0.2", 53, 5353))
	f.Add(icmp("100.64.0.1", "100.64.0.2", icmpEchoRequest, 7))
	f.Add(ip("100.64.0.2", "100.64.0.1", protoICMP, icmpHdr(icmpUnreachable, 0, udp("100.64.0.1", "100.64.0.2", 4000, 53)[:28])))
	f.Add(fragment(tcp("100.64.0.1", "100.64.0.2", 1, 2, 0), 9, 3, false))
	f.Add([]byte{0x60})
	flt := New(Config{Self: selfAddr, MaxFlows: 256})
	if err := flt.SetFilter(testFilter()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		var p packet
		r := parse(pkt, &p)
		flt.Outbound(pkt)
		ok := flt.Inbound(pkt)
		if r != reasonNone && ok {
			t.Fatalf("Inbound accepted a packet parse refuses (%v)", r)
		}
	})
}
