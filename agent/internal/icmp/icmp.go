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
// FragNeeded does not allocate: the caller owns dst and calls it on the
// per-packet read path.
package icmp

import "encoding/binary"

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

const (
	protoICMP   = 1
	protoICMPv6 = 58
)

// FragNeeded writes into dst the ICMP answer for pkt, an IP packet read from
// the TUN interface that is larger than mtu, and returns the answer's length.
// It returns 0, writing nothing the caller should send, when no answer is
// due: pkt fits in mtu, is not a valid IPv4 or IPv6 packet, is an IPv4
// packet without the don't-fragment bit or a non-first fragment, is itself
// an ICMP error, comes from an unspecified or multicast source, or dst is too
// small (MaxIPv6Answer bytes always suffice).
func FragNeeded(dst []byte, pkt []byte, mtu int) int {
	if len(pkt) <= mtu || len(pkt) < 1 {
		return 0
	}
	switch pkt[0] >> 4 {
	case 4:
		return fragNeeded4(dst, pkt, mtu)
	case 6:
		return packetTooBig6(dst, pkt, mtu)
	}
	return 0
}

func fragNeeded4(dst, pkt []byte, mtu int) int {
	if len(pkt) < ipv4HeaderLen {
		return 0
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < ipv4HeaderLen || len(pkt) < ihl {
		return 0
	}
	flagsFrag := binary.BigEndian.Uint16(pkt[6:8])
	const df, offMask = 0x4000, 0x1fff
	if flagsFrag&df == 0 || flagsFrag&offMask != 0 {
		return 0 // the kernel may fragment it; or not the first fragment
	}
	src := pkt[12:16]
	if src[0] == 0 || src[0] >= 224 {
		return 0 // unspecified, multicast or broadcast-ish source
	}
	if pkt[9] == protoICMP {
		if len(pkt) < ihl+1 || isICMPv4Error(pkt[ihl]) {
			return 0
		}
	}
	if mtu < MinIPv4MTU {
		mtu = MinIPv4MTU
	}
	if mtu > 0xffff {
		mtu = 0xffff
	}
	quote := min(len(pkt), MaxIPv4Answer-ipv4HeaderLen-icmpHeaderLen)
	total := ipv4HeaderLen + icmpHeaderLen + quote
	if len(dst) < total {
		return 0
	}
	h := dst[:ipv4HeaderLen]
	h[0] = 0x45
	h[1] = 0xc0 // DSCP CS6, as the kernel marks ICMP errors
	binary.BigEndian.PutUint16(h[2:4], uint16(total))
	binary.BigEndian.PutUint16(h[4:6], 0) // id
	binary.BigEndian.PutUint16(h[6:8], 0)
	h[8] = 64 // TTL
	h[9] = protoICMP
	h[10], h[11] = 0, 0
	copy(h[12:16], pkt[16:20]) // from the original destination
	copy(h[16:20], pkt[12:16]) // to the original source
	binary.BigEndian.PutUint16(h[10:12], checksum(h, 0))

	m := dst[ipv4HeaderLen:total]
	m[0] = 3 // destination unreachable
	m[1] = 4 // fragmentation needed and DF set
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[4:6], 0)
	binary.BigEndian.PutUint16(m[6:8], uint16(mtu))
	copy(m[icmpHeaderLen:], pkt[:quote])
	binary.BigEndian.PutUint16(m[2:4], checksum(m, 0))
	return total
}

// isICMPv4Error reports whether an ICMPv4 type is an error message, which
// must never be answered with another error (RFC 1122 3.2.2).
func isICMPv4Error(typ byte) bool {
	switch typ {
	case 3, 4, 5, 11, 12:
		return true
	}
	return false
}

func packetTooBig6(dst, pkt []byte, mtu int) int {
	if len(pkt) < ipv6HeaderLen {
		return 0
	}
	src := pkt[8:24]
	if src[0] == 0xff || isZero(src) {
		return 0
	}
	if pkt[6] == protoICMPv6 && len(pkt) > ipv6HeaderLen && pkt[ipv6HeaderLen] < 128 {
		return 0 // an ICMPv6 error (types 0-127)
	}
	if mtu < MinIPv6MTU {
		mtu = MinIPv6MTU
	}
	quote := min(len(pkt), MaxIPv6Answer-ipv6HeaderLen-icmpHeaderLen)
	total := ipv6HeaderLen + icmpHeaderLen + quote
	if len(dst) < total {
		return 0
	}
	h := dst[:ipv6HeaderLen]
	h[0], h[1], h[2], h[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(h[4:6], uint16(icmpHeaderLen+quote))
	h[6] = protoICMPv6
	h[7] = 64                 // hop limit
	copy(h[8:24], pkt[24:40]) // from the original destination
	copy(h[24:40], pkt[8:24]) // to the original source

	m := dst[ipv6HeaderLen:total]
	m[0] = 2 // packet too big
	m[1] = 0
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint32(m[4:8], uint32(mtu))
	copy(m[icmpHeaderLen:], pkt[:quote])
	// Pseudo-header: source, destination, upper-layer length, next header.
	var sum uint32
	sum = sumWords(h[8:40], sum)
	sum += uint32(len(m))
	sum += protoICMPv6
	binary.BigEndian.PutUint16(m[2:4], checksum(m, sum))
	return total
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func sumWords(b []byte, sum uint32) uint32 {
	n := len(b) &^ 1
	for i := 0; i < n; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)&1 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

// checksum is the Internet checksum (RFC 1071) of b plus an initial sum.
func checksum(b []byte, initial uint32) uint16 {
	sum := sumWords(b, initial)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
