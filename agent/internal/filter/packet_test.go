package filter

import (
	"testing"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
)

// TestUnjudgeable checks that packets the filter cannot judge are dropped
// under their reason, whatever the rules allow.
func TestUnjudgeable(t *testing.T) {
	const src = "100.64.0.4" // allowed everything by testFilter's "c-any" rule
	tests := []struct {
		name string
		pkt  []byte
		want Reason
	}{
		{"empty", nil, DropMalformed},
		{"short", []byte{0x45, 0, 0}, DropMalformed},
		{"ipv6", append([]byte{0x60}, make([]byte, 47)...), DropIPv6},
		{"version 5", append([]byte{0x55}, make([]byte, 30)...), DropMalformed},
		{"total length past end", func() []byte { b := udp(src, self, 1, 2); b[3]++; return b }(), DropMalformed},
		{"total length cuts transport", func() []byte { b := udp(src, self, 1, 2); b[2], b[3] = 0, 24; return b }(), DropMalformed},
		{"tiny tcp fragment", ip(src, self, protoTCP, tcpHdr(1, 2, syn)[:8]), DropMalformed},
		{"short icmp", ip(src, self, protoICMP, []byte{8, 0, 0, 0}), DropMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(Config{Self: selfAddr})
			if err := f.SetFilter(testFilter()); err != nil {
				t.Fatal(err)
			}
			if inbound(f, tt.pkt) {
				t.Fatalf("Inbound(%x) = true, want false", tt.pkt)
			}
			if got := f.Stats().Drops[tt.want]; got != 1 {
				t.Errorf("Inbound(%x): drops[%v] = %d, want 1", tt.pkt, tt.want, got)
			}
		})
	}
}

// FuzzFilter feeds arbitrary bytes, parsed, to both directions of a filter
// with rules: nothing may panic, and a packet the parser refuses or cannot
// read the transport header of must not pass.
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
		var p packet.Parsed
		ok := p.Parse(pkt)
		flt.Outbound(&p)
		if flt.Inbound(&p) && (!ok || p.Version != 4 || p.TransportShort) {
			t.Fatalf("Inbound accepted %x, which it cannot judge", pkt)
		}
	})
}
