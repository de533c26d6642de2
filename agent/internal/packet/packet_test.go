package packet_test

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet/packettest"
)

func ip4(src, dst string, proto uint8, l4 []byte) []byte {
	return packettest.IPv4(netip.MustParseAddr(src), netip.MustParseAddr(dst), proto, l4)
}

func ip6(src, dst string, next uint8, l4 []byte) []byte {
	return packettest.IPv6(netip.MustParseAddr(src), netip.MustParseAddr(dst), next, l4)
}

var (
	tcpHdr   = packettest.TCP
	icmpHdr  = packettest.ICMP
	fragment = packettest.Fragment
)

func udpHdr(sport, dport uint16) []byte { return packettest.UDP(sport, dport, make([]byte, 4)) }

func edit(b []byte, f func(b []byte)) []byte { f(b); return b }

func TestParse(t *testing.T) {
	a, b := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2")
	tests := []struct {
		name  string
		pkt   []byte
		want  bool
		check func(p *packet.Parsed) bool
	}{
		{"tcp", ip4("100.64.0.1", "100.64.0.2", packet.ProtoTCP, tcpHdr(1000, 80, packet.TCPSyn)), true,
			func(p *packet.Parsed) bool {
				return p.Version == 4 && p.Src == a && p.Dst == b && p.Proto == packet.ProtoTCP && p.L4 == 20 &&
					p.SrcPort == 1000 && p.DstPort == 80 && p.TCPFlags == packet.TCPSyn && p.HasPorts && !p.HasICMP
			}},
		{"udp", ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, udpHdr(53, 5353)), true,
			func(p *packet.Parsed) bool {
				return p.Proto == packet.ProtoUDP && p.SrcPort == 53 && p.DstPort == 5353 && p.HasPorts
			}},
		{"icmp echo", ip4("100.64.0.1", "100.64.0.2", packet.ProtoICMP, icmpHdr(packet.ICMPEchoRequest, 77, 9, nil)), true,
			func(p *packet.Parsed) bool {
				return p.HasICMP && p.SrcPort == 77 && p.DstPort == 77 && p.EchoSeq == 9 && p.ICMPType == packet.ICMPEchoRequest && !p.HasPorts
			}},
		{"icmp error quoting udp", ip4("100.64.0.2", "100.64.0.1", packet.ProtoICMP, icmpHdr(packet.ICMPUnreachable, 0, 0, ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, udpHdr(4000, 53))[:28])), true,
			func(p *packet.Parsed) bool {
				q := p.Quoted
				return q.OK && q.SrcPort == 4000 && q.DstPort == 53 && q.Proto == packet.ProtoUDP && q.Src == a && q.Dst == b
			}},
		{"icmp error quoting echo", ip4("100.64.0.2", "100.64.0.1", packet.ProtoICMP, icmpHdr(packet.ICMPTimeExceeded, 0, 0, ip4("100.64.0.1", "100.64.0.2", packet.ProtoICMP, icmpHdr(packet.ICMPEchoRequest, 5, 1, nil)))), true,
			func(p *packet.Parsed) bool { return p.Quoted.OK && p.Quoted.SrcPort == 5 && p.Quoted.DstPort == 5 }},
		{"icmp error quote truncated", ip4("100.64.0.2", "100.64.0.1", packet.ProtoICMP, icmpHdr(packet.ICMPUnreachable, 0, 0, ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, udpHdr(4000, 53))[:27])), true,
			func(p *packet.Parsed) bool { return !p.Quoted.OK }},
		{"gre", ip4("100.64.0.1", "100.64.0.2", 47, nil), true,
			func(p *packet.Parsed) bool { return p.Proto == 47 && !p.HasPorts && !p.TransportShort }},
		{"later fragment", fragment(ip4("100.64.0.1", "100.64.0.2", packet.ProtoTCP, tcpHdr(1, 2, 0)), 9, 3, false), true,
			func(p *packet.Parsed) bool { return p.LaterFrag && !p.HasPorts && !p.TransportShort && p.ID == 9 }},
		{"first fragment", fragment(ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, udpHdr(1, 2)), 9, 0, true), true,
			func(p *packet.Parsed) bool { return p.FirstFrag && p.HasPorts }},
		{"dont fragment", edit(ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, udpHdr(1, 2)), func(b []byte) { b[6] = 0x40 }), true,
			func(p *packet.Parsed) bool { return p.DF && !p.FirstFrag && !p.LaterFrag }},
		{"padding cut", append(ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, udpHdr(1, 2)), 0, 0, 0), true,
			func(p *packet.Parsed) bool { return len(p.Buf) == 32 }},
		{"ipv4 options", edit(append(ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, nil), udpHdr(7, 8)...), func(b []byte) {
			// 24-byte header: the UDP header moves back 4 bytes.
			b[0] = 0x46
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
			copy(b[24:], udpHdr(7, 8))
		}), true,
			func(p *packet.Parsed) bool { return p.L4 == 24 && p.SrcPort == 7 && p.DstPort == 8 }},
		{"ipv6 udp", ip6("fd00::1", "fd00::2", packet.ProtoUDP, udpHdr(1, 2)), true,
			func(p *packet.Parsed) bool {
				return p.Version == 6 && p.Src == netip.MustParseAddr("fd00::1") && p.L4 == 40 && p.HasPorts && p.DstPort == 2
			}},
		{"ipv6 mapped source stays ipv6", ip6("::ffff:100.64.0.1", "fd00::2", packet.ProtoUDP, udpHdr(1, 2)), true,
			func(p *packet.Parsed) bool { return p.Src.Is6() && p.Src.Unmap() == a }},
		{"icmpv6", ip6("fd00::1", "fd00::2", packet.ProtoICMPv6, icmpHdr(128, 1, 1, nil)), true,
			func(p *packet.Parsed) bool { return p.HasICMP && p.ICMPType == 128 }},
		{"tiny tcp fragment", ip4("1.1.1.1", "2.2.2.2", packet.ProtoTCP, tcpHdr(1, 2, packet.TCPSyn)[:8]), true,
			func(p *packet.Parsed) bool { return p.TransportShort && !p.HasPorts }},
		{"short icmp", ip4("1.1.1.1", "2.2.2.2", packet.ProtoICMP, []byte{8, 0, 0, 0}), true,
			func(p *packet.Parsed) bool { return p.TransportShort && !p.HasICMP }},
		{"total length cuts transport", edit(ip4("1.1.1.1", "2.2.2.2", packet.ProtoUDP, udpHdr(1, 2)), func(b []byte) { b[2], b[3] = 0, 24 }), true,
			func(p *packet.Parsed) bool { return p.TransportShort && len(p.Buf) == 24 }},
		{"empty", nil, false, nil},
		{"short", []byte{0x45, 0, 0}, false, nil},
		{"short ipv6", []byte{0x60, 0, 0, 0}, false, nil},
		{"version 5", append([]byte{0x55}, make([]byte, 30)...), false, nil},
		{"ihl too small", edit(ip4("1.1.1.1", "2.2.2.2", packet.ProtoUDP, udpHdr(1, 2)), func(b []byte) { b[0] = 0x44 }), false, nil},
		{"ihl past end", edit(ip4("1.1.1.1", "2.2.2.2", packet.ProtoUDP, udpHdr(1, 2)), func(b []byte) { b[0] = 0x4f }), false, nil},
		{"ihl past total", edit(append(ip4("1.1.1.1", "2.2.2.2", packet.ProtoUDP, udpHdr(1, 2)), make([]byte, 40)...), func(b []byte) { b[0] = 0x4f }), false, nil},
		{"total length past end", edit(ip4("1.1.1.1", "2.2.2.2", packet.ProtoUDP, udpHdr(1, 2)), func(b []byte) { b[3]++ }), false, nil},
		{"ipv6 payload past end", edit(ip6("fd00::1", "fd00::2", packet.ProtoUDP, udpHdr(1, 2)), func(b []byte) { b[5]++ }), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p packet.Parsed
			if got := p.Parse(tt.pkt); got != tt.want {
				t.Fatalf("Parse(%x) = %v, want %v", tt.pkt, got, tt.want)
			}
			if !tt.want && p.Version != 0 {
				t.Fatalf("Parse(%x) failed but left Version %d", tt.pkt, p.Version)
			}
			if tt.check != nil && !tt.check(&p) {
				t.Errorf("Parse(%x) = %+v, fields wrong", tt.pkt, p)
			}
		})
	}
}

// TestParseResets checks that a reused packet.Parsed keeps nothing of the packet
// before.
func TestParseResets(t *testing.T) {
	var p packet.Parsed
	p.Parse(ip4("100.64.0.2", "100.64.0.1", packet.ProtoICMP, icmpHdr(packet.ICMPUnreachable, 0, 0, ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, udpHdr(4000, 53))[:28])))
	if !p.Quoted.OK {
		t.Fatal("quote not read")
	}
	if p.Parse([]byte{0x45}) || !reflect.DeepEqual(p, packet.Parsed{}) {
		t.Fatalf("Parse(short) left %+v", p)
	}
}

func TestParseNoAlloc(t *testing.T) {
	pkts := [][]byte{
		ip4("100.64.0.1", "100.64.0.2", packet.ProtoTCP, tcpHdr(1000, 80, packet.TCPSyn)),
		ip4("100.64.0.2", "100.64.0.1", packet.ProtoICMP, icmpHdr(packet.ICMPUnreachable, 0, 0, ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, udpHdr(4000, 53))[:28])),
		ip6("fd00::1", "fd00::2", packet.ProtoUDP, udpHdr(1, 2)),
	}
	var p packet.Parsed
	allocs := testing.AllocsPerRun(100, func() {
		for _, b := range pkts {
			p.Parse(b)
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse allocates %.1f times per run, want 0", allocs)
	}
}

// checksumRef is RFC 1071's reference loop, 16 bits at a time.
func checksumRef(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func TestChecksum(t *testing.T) {
	// RFC 1071 section 3's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
	if got := packet.Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0); got != ^uint16(0xddf2) {
		t.Errorf("Checksum(RFC 1071 example) = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	h := ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, udpHdr(1, 2))
	if got := packet.Checksum(h[:20], 0); got != 0 {
		t.Errorf("Checksum(header with its checksum) = %#04x, want 0", got)
	}
	if got := packet.Checksum(nil, 0); got != 0xffff {
		t.Errorf("Checksum(nil) = %#04x, want 0xffff", got)
	}
}

func FuzzChecksum(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, uint16(0))
	f.Add([]byte{0xff, 0xff, 0xff}, uint16(0xffff))
	f.Fuzz(func(t *testing.T, b []byte, sum uint16) {
		if got, want := packet.Checksum(b, uint32(sum)), checksumRef(b, uint32(sum)); got != want {
			t.Fatalf("Checksum(%x, %#x) = %#04x, want %#04x", b, sum, got, want)
		}
	})
}

// FuzzParse: nothing panics, nothing is read past the input, and what
// Parse reports agrees with the bytes.
func FuzzParse(f *testing.F) {
	f.Add(ip4("100.64.0.1", "100.64.0.2", packet.ProtoTCP, tcpHdr(1000, 80, packet.TCPSyn)))
	f.Add(ip4("100.64.0.2", "100.64.0.1", packet.ProtoICMP, icmpHdr(packet.ICMPUnreachable, 0, 0, ip4("100.64.0.1", "100.64.0.2", packet.ProtoUDP, udpHdr(4000, 53))[:28])))
	f.Add(fragment(ip4("100.64.0.1", "100.64.0.2", packet.ProtoTCP, tcpHdr(1, 2, 0)), 9, 3, false))
	f.Add(ip6("fd00::1", "fd00::2", packet.ProtoUDP, udpHdr(1, 2)))
	f.Add([]byte{0x60})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p packet.Parsed
		ok := p.Parse(b)
		if !ok {
			if !reflect.DeepEqual(p, packet.Parsed{}) {
				t.Fatalf("Parse(%x) failed but left %+v", b, p)
			}
			return
		}
		if len(p.Buf) > len(b) || p.L4 > len(p.Buf) || int(b[0]>>4) != int(p.Version) {
			t.Fatalf("Parse(%x) = %+v out of bounds", b, p)
		}
		if p.HasPorts && (p.Proto != packet.ProtoTCP && p.Proto != packet.ProtoUDP || p.TransportShort) {
			t.Fatalf("Parse(%x) = %+v: ports without a header", b, p)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	pkt := ip4("100.64.0.1", "100.64.0.2", packet.ProtoTCP, tcpHdr(1000, 80, packet.TCPSyn))
	var p packet.Parsed
	b.ReportAllocs()
	for b.Loop() {
		p.Parse(pkt)
	}
}

func BenchmarkChecksum(b *testing.B) {
	buf := make([]byte, 1400)
	for i := range buf {
		buf[i] = byte(i)
	}
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		packet.Checksum(buf, 0)
	}
}
