package icmp

import (
	"encoding/binary"
	"net"
	"testing"

	xicmp "golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
)

// packet4 returns an IPv4 packet of n bytes from 100.64.0.1 to 100.64.0.2.
func packet4(n int, proto byte, flags uint16, payload0 byte) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(n))
	binary.BigEndian.PutUint16(p[6:8], flags)
	p[8] = 64
	p[9] = proto
	copy(p[12:16], []byte{100, 64, 0, 1})
	copy(p[16:20], []byte{100, 64, 0, 2})
	binary.BigEndian.PutUint16(p[10:12], packet.Checksum(p[:20], 0))
	if n > 20 {
		p[20] = payload0
	}
	return p
}

func packet6(n int, next byte, payload0 byte) []byte {
	p := make([]byte, n)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:6], uint16(n-40))
	p[6] = next
	p[7] = 64
	copy(p[8:24], net.ParseIP("fd00::1"))
	copy(p[24:40], net.ParseIP("fd00::2"))
	if n > 40 {
		p[40] = payload0
	}
	return p
}

func TestFragNeeded(t *testing.T) {
	const df = 0x4000
	tests := []struct {
		name string
		pkt  []byte
		mtu  int
		want bool
	}{
		{"v4 too big with DF", packet4(1500, 17, df, 0), 1420, true},
		{"v4 fits", packet4(1420, 17, df, 0), 1420, false},
		{"v4 without DF", packet4(1500, 17, 0, 0), 1420, false},
		{"v4 later fragment", packet4(1500, 17, df|10, 0), 1420, false},
		{"v4 icmp echo", packet4(1500, 1, df, 8), 1420, true},
		{"v4 icmp error", packet4(1500, 1, df, 3), 1420, false},
		{"v4 truncated header", packet4(1500, 17, df, 0)[:10], 5, false},
		{"v6 too big", packet6(1500, 17, 0), 1420, true},
		{"v6 icmp error", packet6(1500, 58, 1), 1420, false},
		{"v6 icmp echo", packet6(1500, 58, 128), 1420, true},
		{"not ip", []byte{0x20, 1, 2, 3}, 1, false},
		{"empty", nil, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, MaxIPv6Answer)
			n := fragNeeded(dst, tt.pkt, tt.mtu)
			if got := n > 0; got != tt.want {
				t.Fatalf("FragNeeded(%s) = %d, want answer %v", tt.name, n, tt.want)
			}
			if n == 0 {
				return
			}
			checkAnswer(t, dst[:n], tt.pkt, tt.mtu)
		})
	}
}

func checkAnswer(t *testing.T, ans, pkt []byte, mtu int) {
	t.Helper()
	switch ans[0] >> 4 {
	case 4:
		h, err := ipv4.ParseHeader(ans)
		if err != nil {
			t.Fatalf("parse answer header: %v", err)
		}
		if packet.Checksum(ans[:20], 0) != 0 {
			t.Errorf("ipv4 header checksum does not verify")
		}
		if !h.Src.Equal(net.IP(pkt[16:20])) || !h.Dst.Equal(net.IP(pkt[12:16])) {
			t.Errorf("answer %s -> %s, want %s -> %s", h.Src, h.Dst, net.IP(pkt[16:20]), net.IP(pkt[12:16]))
		}
		if h.TotalLen != len(ans) || len(ans) > MaxIPv4Answer {
			t.Errorf("answer total length %d (len %d), want equal and <= %d", h.TotalLen, len(ans), MaxIPv4Answer)
		}
		body := ans[20:]
		if packet.Checksum(body, 0) != 0 {
			t.Errorf("icmp checksum does not verify")
		}
		m, err := xicmp.ParseMessage(1, body)
		if err != nil {
			t.Fatalf("parse icmp: %v", err)
		}
		if m.Type != ipv4.ICMPTypeDestinationUnreachable || m.Code != 4 {
			t.Errorf("icmp type/code = %v/%d, want destination unreachable/4", m.Type, m.Code)
		}
		if got, want := int(binary.BigEndian.Uint16(body[6:8])), min(max(mtu, MinIPv4MTU), 0xffff); got != want {
			t.Errorf("next-hop mtu = %d, want %d", got, want)
		}
		if string(body[8:8+28]) != string(pkt[:28]) {
			t.Errorf("quote does not start with the original header and 8 bytes")
		}
	case 6:
		if len(ans) > MaxIPv6Answer {
			t.Errorf("answer %d bytes, want <= %d", len(ans), MaxIPv6Answer)
		}
		h, err := ipv6.ParseHeader(ans)
		if err != nil {
			t.Fatalf("parse answer header: %v", err)
		}
		if !h.Src.Equal(net.IP(pkt[24:40])) || !h.Dst.Equal(net.IP(pkt[8:24])) {
			t.Errorf("answer %s -> %s, want reversed", h.Src, h.Dst)
		}
		body := ans[40:]
		if h.PayloadLen != len(body) {
			t.Errorf("payload length %d, want %d", h.PayloadLen, len(body))
		}
		if packet.Checksum(body, packet.PseudoHeaderSum6(ans, len(body), packet.ProtoICMPv6)) != 0 {
			t.Errorf("icmpv6 checksum does not verify")
		}
		m, err := xicmp.ParseMessage(58, body)
		if err != nil {
			t.Fatalf("parse icmpv6: %v", err)
		}
		ptb, ok := m.Body.(*xicmp.PacketTooBig)
		if !ok || m.Type != ipv6.ICMPTypePacketTooBig {
			t.Fatalf("icmpv6 message %v %T, want packet too big", m.Type, m.Body)
		}
		want := max(mtu, MinIPv6MTU)
		if ptb.MTU != want {
			t.Errorf("mtu = %d, want %d", ptb.MTU, want)
		}
	default:
		t.Fatalf("answer is not IP: % x", ans[:1])
	}
}

func TestFragNeededSmallDst(t *testing.T) {
	dst := make([]byte, 100)
	if n := fragNeeded(dst, packet4(1500, 17, 0x4000, 0), 1420); n != 0 {
		t.Fatalf("FragNeeded(dst too small) = %d, want 0", n)
	}
}

func TestFragNeededNoAlloc(t *testing.T) {
	dst := make([]byte, MaxIPv6Answer)
	p4 := packet4(1500, 17, 0x4000, 0)
	p6 := packet6(1500, 17, 0)
	allocs := testing.AllocsPerRun(100, func() {
		fragNeeded(dst, p4, 1420)
		fragNeeded(dst, p6, 1420)
	})
	if allocs != 0 {
		t.Fatalf("FragNeeded allocates %.1f times per call, want 0", allocs)
	}
}

func FuzzFragNeeded(f *testing.F) {
	f.Add(packet4(1500, 17, 0x4000, 0), 1420)
	f.Add(packet4(600, 1, 0x4000, 8), 100)
	f.Add(packet6(1500, 58, 128), 1280)
	f.Add([]byte{0x4f}, 0)
	f.Fuzz(func(t *testing.T, pkt []byte, mtu int) {
		dst := make([]byte, MaxIPv6Answer)
		n := fragNeeded(dst, pkt, mtu)
		if n < 0 || n > len(dst) {
			t.Fatalf("FragNeeded = %d, out of range", n)
		}
		if n > 0 && len(pkt) <= mtu {
			t.Fatalf("answered a packet of %d bytes that fits mtu %d", len(pkt), mtu)
		}
		if n > 0 {
			checkAnswer(t, dst[:n], pkt, mtu)
		}
	})
}

// fragNeeded parses pkt, as the device's TUN reader does, and answers it.
func fragNeeded(dst, pkt []byte, mtu int) int {
	var p packet.Parsed
	p.Parse(pkt)
	return FragNeeded(dst, &p, mtu)
}
