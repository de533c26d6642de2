package filter

import "encoding/binary"

// IP protocol numbers.
const (
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

// ICMP types the filter looks at.
const (
	icmpEchoReply      = 0
	icmpUnreachable    = 3
	icmpEchoRequest    = 8
	icmpTimeExceeded   = 11
	icmpParamProblem   = 12
	ipv4HeaderMin      = 20
	tcpFlagSYN         = 0x02
	tcpFlagACK         = 0x10
	ipFlagMoreFrags    = 0x2000
	ipFragOffsetMask   = 0x1fff
	icmpHeaderLen      = 8
	quotedTransportLen = 8 // bytes of the transport header an ICMP error quotes
)

// packet is what the filter needs of an IPv4 packet. It lives on the stack.
type packet struct {
	src, dst uint32
	proto    uint8
	// sport and dport are the transport ports; for ICMP echo both hold the
	// echo identifier, so an echo and its reply make one flow.
	sport, dport uint16
	tcpFlags     uint8
	icmpType     uint8
	ipID         uint16
	firstFrag    bool // more fragments follow, offset 0
	laterFrag    bool // offset > 0: no transport header
	hasPorts     bool // tcp or udp (not a later fragment)
	quoted       quotedFlow
}

// quotedFlow is the flow of the packet an ICMP error quotes.
type quotedFlow struct {
	ok           bool
	src, dst     uint32
	proto        uint8
	sport, dport uint16
}

// parse reads an IPv4 packet. It never panics and never reads past pkt;
// when the packet is not one the filter can judge it returns a drop reason.
func parse(pkt []byte, p *packet) Reason {
	if len(pkt) < 1 {
		return DropMalformed
	}
	if pkt[0]>>4 != 4 {
		if pkt[0]>>4 == 6 {
			return DropIPv6
		}
		return DropMalformed
	}
	if len(pkt) < ipv4HeaderMin {
		return DropMalformed
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if ihl < ipv4HeaderMin || total < ihl || total > len(pkt) {
		return DropMalformed
	}
	pkt = pkt[:total]
	frag := binary.BigEndian.Uint16(pkt[6:8])
	p.ipID = binary.BigEndian.Uint16(pkt[4:6])
	p.proto = pkt[9]
	p.src = binary.BigEndian.Uint32(pkt[12:16])
	p.dst = binary.BigEndian.Uint32(pkt[16:20])
	if frag&ipFragOffsetMask != 0 {
		p.laterFrag = true
		return reasonNone
	}
	p.firstFrag = frag&ipFlagMoreFrags != 0
	l4 := pkt[ihl:]
	switch p.proto {
	case protoTCP:
		// Ports and flags: a first fragment too short to hold the flags is
		// the "tiny fragment" attack (RFC 1858).
		if len(l4) < 14 {
			return DropMalformed
		}
		p.sport = binary.BigEndian.Uint16(l4[0:2])
		p.dport = binary.BigEndian.Uint16(l4[2:4])
		p.tcpFlags = l4[13]
		p.hasPorts = true
	case protoUDP:
		if len(l4) < 8 {
			return DropMalformed
		}
		p.sport = binary.BigEndian.Uint16(l4[0:2])
		p.dport = binary.BigEndian.Uint16(l4[2:4])
		p.hasPorts = true
	case protoICMP:
		if len(l4) < icmpHeaderLen {
			return DropMalformed
		}
		p.icmpType = l4[0]
		switch p.icmpType {
		case icmpEchoRequest, icmpEchoReply:
			// The identifier plays the part of the local port.
			p.sport = binary.BigEndian.Uint16(l4[4:6])
			p.dport = p.sport
		case icmpUnreachable, icmpTimeExceeded, icmpParamProblem:
			parseQuoted(l4[icmpHeaderLen:], &p.quoted)
		}
	}
	return reasonNone
}

// parseQuoted reads the IPv4 header and first transport bytes an ICMP
// error quotes. The quote may be truncated; q.ok says whether it was read.
func parseQuoted(b []byte, q *quotedFlow) {
	if len(b) < ipv4HeaderMin || b[0]>>4 != 4 {
		return
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < ipv4HeaderMin || len(b) < ihl+quotedTransportLen {
		return
	}
	if binary.BigEndian.Uint16(b[6:8])&ipFragOffsetMask != 0 {
		return // a later fragment quotes no ports
	}
	q.proto = b[9]
	q.src = binary.BigEndian.Uint32(b[12:16])
	q.dst = binary.BigEndian.Uint32(b[16:20])
	l4 := b[ihl:]
	switch q.proto {
	case protoTCP, protoUDP:
		q.sport = binary.BigEndian.Uint16(l4[0:2])
		q.dport = binary.BigEndian.Uint16(l4[2:4])
	case protoICMP:
		if l4[0] != icmpEchoRequest && l4[0] != icmpEchoReply {
			return
		}
		q.sport = binary.BigEndian.Uint16(l4[4:6])
		q.dport = q.sport
	default:
		return
	}
	q.ok = true
}
