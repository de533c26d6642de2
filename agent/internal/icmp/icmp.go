// Package icmp builds the ICMP answers the agent sends back into its own TUN
// interface, so that the kernel's path MTU discovery works through the mesh:
// a packet read from TUN that is larger than the tunnel MTU gets an ICMPv4
// "fragmentation needed" (type 3 code 4, RFC 792/1191) or an ICMPv6 "packet
// too big" (type 2, RFC 4443) instead of vanishing.
//
// The answer's source address is the original packet's destination, as if a
// router on the way had sent it; the kernel matches the quoted header to the
// sending socket and lowers that route's MTU.
//
// FragNeeded reads the packet's one parse (package packet) and does not
// allocate: the caller owns dst and calls it on the per-packet read path.
package icmp

import (
	"encoding/binary"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
)

// Sizes of the answers.
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	icmpHeaderLen = 8

	// MaxIPv4Answer is the largest ICMPv4 answer FragNeeded writes: RFC 1812
	// lets a router quote as much of the packet as fits in 576 bytes.
	MaxIPv4Answer = 576
	// MaxIPv6Answer is the largest ICMPv6 answer: an error must not exceed
	// the IPv6 minimum MTU (RFC 4443 2.4(c)).
	MaxIPv6Answer = 1280

	// MinIPv6MTU is the smallest MTU an ICMPv6 packet too big may carry.
	MinIPv6MTU = 1280
	// MinIPv4MTU is the smallest MTU an ICMPv4 frag-needed may carry (RFC 791).
	MinIPv4MTU = 68
)

// FragNeeded writes into dst the ICMP answer for p, an IP packet read from
// the TUN interface (parsed) that is larger than mtu, and returns the
// answer's length. It returns 0, writing nothing the caller should send,
// when no answer is due: the packet fits in mtu, is not a valid IPv4 or
// IPv6 packet, is an IPv4 packet without the don't-fragment bit or a
// non-first fragment, is itself an ICMP error, comes from an unspecified or
// multicast source, or dst is too small (MaxIPv6Answer bytes always
// suffice).
func FragNeeded(dst []byte, p *packet.Parsed, mtu int) int {
	if len(p.Buf) <= mtu {
		return 0
	}
	switch p.Version {
	case 4:
		return fragNeeded4(dst, p, mtu)
	case 6:
		return packetTooBig6(dst, p, mtu)
	}
	return 0
}

func fragNeeded4(dst []byte, p *packet.Parsed, mtu int) int {
	if !p.DF || p.LaterFrag {
		return 0 // the kernel may fragment it; or not the first fragment
	}
	if src := p.Src.As4(); src[0] == 0 || src[0] >= 224 {
		return 0 // unspecified, multicast or broadcast-ish source
	}
	if p.Proto == packet.ProtoICMP && (!p.HasICMP || packet.IsICMPv4Error(p.ICMPType)) {
		return 0
	}
	if mtu < MinIPv4MTU {
		mtu = MinIPv4MTU
	}
	if mtu > 0xffff {
		mtu = 0xffff
	}
	pkt := p.Buf
	h, m, ok := layout(dst, pkt, ipv4HeaderLen, MaxIPv4Answer)
	if !ok {
		return 0
	}
	total := len(h) + len(m)
	h[0] = 0x45
	h[1] = 0xc0 // DSCP CS6, as the kernel marks ICMP errors
	binary.BigEndian.PutUint16(h[2:4], uint16(total))
	binary.BigEndian.PutUint16(h[4:6], 0) // id
	binary.BigEndian.PutUint16(h[6:8], 0)
	h[8] = 64 // TTL
	h[9] = packet.ProtoICMP
	copy(h[12:16], pkt[16:20]) // from the original destination
	copy(h[16:20], pkt[12:16]) // to the original source
	packet.PutIPv4HeaderChecksum(h)

	m[0] = packet.ICMPUnreachable
	m[1] = 4 // fragmentation needed and DF set
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[4:6], 0)
	binary.BigEndian.PutUint16(m[6:8], uint16(mtu))
	binary.BigEndian.PutUint16(m[2:4], packet.Checksum(m, 0))
	return total
}

func packetTooBig6(dst []byte, p *packet.Parsed, mtu int) int {
	if p.Src.IsMulticast() || p.Src.IsUnspecified() {
		return 0
	}
	if p.Proto == packet.ProtoICMPv6 && p.HasICMP && p.ICMPType < 128 {
		return 0 // an ICMPv6 error (types 0-127)
	}
	if mtu < MinIPv6MTU {
		mtu = MinIPv6MTU
	}
	pkt := p.Buf
	h, m, ok := layout(dst, pkt, ipv6HeaderLen, MaxIPv6Answer)
	if !ok {
		return 0
	}
	h[0], h[1], h[2], h[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(h[4:6], uint16(len(m)))
	h[6] = packet.ProtoICMPv6
	h[7] = 64                 // hop limit
	copy(h[8:24], pkt[24:40]) // from the original destination
	copy(h[24:40], pkt[8:24]) // to the original source

	m[0] = 2 // packet too big
	m[1] = 0
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint32(m[4:8], uint32(mtu))
	binary.BigEndian.PutUint16(m[2:4], packet.Checksum(m, packet.PseudoHeaderSum6(h, len(m), packet.ProtoICMPv6)))
	return len(h) + len(m)
}

// layout splits dst into the IP header h (hdrLen bytes) and the ICMP
// message m of an answer of at most maxAnswer bytes, and copies into m,
// after its header, as much of pkt as fits. ok is false, and nothing is
// written, when dst is too small.
func layout(dst, pkt []byte, hdrLen, maxAnswer int) (h, m []byte, ok bool) {
	quote := min(len(pkt), maxAnswer-hdrLen-icmpHeaderLen)
	total := hdrLen + icmpHeaderLen + quote
	if len(dst) < total {
		return nil, nil, false
	}
	h, m = dst[:hdrLen], dst[hdrLen:total]
	copy(m[icmpHeaderLen:], pkt[:quote])
	return h, m, true
}
