package packet

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// ICMPv4 types.
const (
	ICMPEchoReply    = 0
	ICMPUnreachable  = 3
	ICMPSourceQuench = 4
	ICMPRedirect     = 5
	ICMPEchoRequest  = 8
	ICMPTimeExceeded = 11
	ICMPParamProblem = 12
)

// TCP flags.
const (
	TCPSyn = 0x02
	TCPAck = 0x10
)

// Header sizes.
const (
	IPv4HeaderLen = 20 // without options
	IPv6HeaderLen = 40
	ICMPHeaderLen = 8
	UDPHeaderLen  = 8
	// tcpFlagsEnd is how much of a TCP header holds the ports and flags.
	tcpFlagsEnd = 14
	// quotedTransportLen is how much of the transport header an ICMPv4
	// error quotes at least (RFC 792).
	quotedTransportLen = 8
)

// IPv4 flags and fragment offset (RFC 791).
const (
	ipv4DontFragment  = 0x4000
	ipv4MoreFragments = 0x2000
	ipv4FragOffset    = 0x1fff
)

// Parsed is what the data plane reads of an IP packet. The zero value (and
// a Parsed whose Parse failed) has Version 0: not a valid IP packet. It is
// meant to be reused: Parse overwrites every field.
type Parsed struct {
	// Buf is the packet cut to the length its IP header gives.
	Buf []byte
	// Version is 4 or 6; 0 when the bytes are not a valid IP packet.
	Version uint8
	// Proto is the IPv4 protocol or the IPv6 next header.
	Proto    uint8
	Src, Dst netip.Addr
	// L4 is the offset of the transport header in Buf.
	L4 int
	// IPv4 only: the identification, don't-fragment, and whether the
	// packet is the first of several fragments (offset 0, more follow) or
	// a later one (offset > 0: it carries no transport header).
	ID        uint16
	DF        bool
	FirstFrag bool
	LaterFrag bool
	// TransportShort: the protocol is TCP, UDP or ICMP (ICMPv6) and the
	// packet, not a later fragment, is too short for the header fields
	// below.
	TransportShort bool
	// HasPorts: a TCP or UDP header was read into SrcPort and DstPort.
	HasPorts bool
	// SrcPort and DstPort are the TCP or UDP ports. For an ICMP echo
	// request or reply both hold the echo identifier, so an echo and its
	// reply make one flow.
	SrcPort, DstPort uint16
	TCPFlags         uint8
	// HasICMP: an ICMP (ICMPv6) header was read into the fields below.
	HasICMP            bool
	ICMPType, ICMPCode uint8
	EchoSeq            uint16 // of an ICMPv4 echo request or reply
	// Quoted is the flow of the packet an ICMPv4 error quotes.
	Quoted Quoted
}

// Quoted is the flow of the IPv4 packet an ICMP error (unreachable, time
// exceeded, parameter problem) quotes. The quote may be truncated; OK says
// whether its header and first 8 transport bytes were read.
type Quoted struct {
	OK       bool
	Proto    uint8
	Src, Dst netip.Addr
	// SrcPort and DstPort: as in Parsed (the echo identifier for echoes).
	SrcPort, DstPort uint16
}

// Parse reads b into p and reports whether b is a valid IPv4 or IPv6
// packet. A packet whose transport header is cut short is still valid (see
// TransportShort). p.Buf aliases b.
func (p *Parsed) Parse(b []byte) bool {
	*p = Parsed{}
	if len(b) < 1 {
		return false
	}
	switch b[0] >> 4 {
	case 4:
		return p.parse4(b)
	case 6:
		return p.parse6(b)
	}
	return false
}

func (p *Parsed) parse4(b []byte) bool {
	if len(b) < IPv4HeaderLen {
		return false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < IPv4HeaderLen || total < ihl || total > len(b) {
		return false
	}
	b = b[:total]
	p.setIP(b, 4, b[9], netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), ihl)
	frag := binary.BigEndian.Uint16(b[6:8])
	p.ID = binary.BigEndian.Uint16(b[4:6])
	p.DF = frag&ipv4DontFragment != 0
	if frag&ipv4FragOffset != 0 {
		p.LaterFrag = true
		return true
	}
	p.FirstFrag = frag&ipv4MoreFragments != 0
	p.parseTransport(b[ihl:], ProtoICMP)
	return true
}

func (p *Parsed) parse6(b []byte) bool {
	if len(b) < IPv6HeaderLen {
		return false
	}
	total := IPv6HeaderLen + int(binary.BigEndian.Uint16(b[4:6]))
	if total > len(b) {
		return false
	}
	b = b[:total]
	p.setIP(b, 6, b[6], netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40])), IPv6HeaderLen)
	p.parseTransport(b[IPv6HeaderLen:], ProtoICMPv6)
	return true
}

// setIP sets the fields both IP versions have.
func (p *Parsed) setIP(b []byte, version, proto uint8, src, dst netip.Addr, l4 int) {
	p.Buf, p.Version, p.Proto, p.Src, p.Dst, p.L4 = b, version, proto, src, dst, l4
}

// parseTransport reads the transport header l4 of p's protocol; icmp is
// the ICMP protocol of p's IP version.
func (p *Parsed) parseTransport(l4 []byte, icmp uint8) {
	switch p.Proto {
	case ProtoTCP:
		p.parsePorts(l4, tcpFlagsEnd)
	case ProtoUDP:
		p.parsePorts(l4, UDPHeaderLen)
	case icmp:
		if len(l4) < ICMPHeaderLen {
			p.TransportShort = true
			return
		}
		p.HasICMP = true
		p.ICMPType, p.ICMPCode = l4[0], l4[1]
		if icmp != ProtoICMP {
			return
		}
		switch p.ICMPType {
		case ICMPEchoRequest, ICMPEchoReply:
			p.SrcPort = binary.BigEndian.Uint16(l4[4:6])
			p.DstPort = p.SrcPort
			p.EchoSeq = binary.BigEndian.Uint16(l4[6:8])
		case ICMPUnreachable, ICMPTimeExceeded, ICMPParamProblem:
			p.Quoted.parse(l4[ICMPHeaderLen:])
		}
	}
}

// parsePorts reads the ports of a TCP or UDP header l4, which must hold
// need bytes (and for TCP the flags too).
func (p *Parsed) parsePorts(l4 []byte, need int) {
	if len(l4) < need {
		p.TransportShort = true
		return
	}
	p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
	p.DstPort = binary.BigEndian.Uint16(l4[2:4])
	if p.Proto == ProtoTCP {
		p.TCPFlags = l4[13]
	}
	p.HasPorts = true
}

// parse reads the IPv4 header and first transport bytes an ICMP error
// quotes.
func (q *Quoted) parse(b []byte) {
	if len(b) < IPv4HeaderLen || b[0]>>4 != 4 {
		return
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < IPv4HeaderLen || len(b) < ihl+quotedTransportLen {
		return
	}
	if binary.BigEndian.Uint16(b[6:8])&ipv4FragOffset != 0 {
		return // a later fragment quotes no ports
	}
	l4 := b[ihl:]
	switch b[9] {
	case ProtoTCP, ProtoUDP:
		q.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		q.DstPort = binary.BigEndian.Uint16(l4[2:4])
	case ProtoICMP:
		if l4[0] != ICMPEchoRequest && l4[0] != ICMPEchoReply {
			return
		}
		q.SrcPort = binary.BigEndian.Uint16(l4[4:6])
		q.DstPort = q.SrcPort
	default:
		return
	}
	q.Proto = b[9]
	q.Src = netip.AddrFrom4([4]byte(b[12:16]))
	q.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	q.OK = true
}

// IsICMPv4Error reports whether an ICMPv4 type is an error message, which
// must never be answered with another error (RFC 1122 3.2.2).
func IsICMPv4Error(typ uint8) bool {
	switch typ {
	case ICMPUnreachable, ICMPSourceQuench, ICMPRedirect, ICMPTimeExceeded, ICMPParamProblem:
		return true
	}
	return false
}
