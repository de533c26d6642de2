package filter

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
)

// inbound parses pkt and asks f whether it may be delivered, as the device
// does with a decrypted packet (which it drops itself when Parse fails).
func inbound(f *Filter, pkt []byte) bool {
	var p packet.Parsed
	p.Parse(pkt)
	return f.Inbound(&p)
}

// outbound parses pkt and shows it to f as sent by the node.
func outbound(f *Filter, pkt []byte) {
	var p packet.Parsed
	p.Parse(pkt)
	f.Outbound(&p)
}

// Protocol numbers and flags, short.
const (
	protoICMP        = packet.ProtoICMP
	protoTCP         = packet.ProtoTCP
	protoUDP         = packet.ProtoUDP
	icmpEchoReply    = packet.ICMPEchoReply
	icmpEchoRequest  = packet.ICMPEchoRequest
	icmpUnreachable  = packet.ICMPUnreachable
	icmpTimeExceeded = packet.ICMPTimeExceeded
	tcpFlagSYN       = packet.TCPSyn
	tcpFlagACK       = packet.TCPAck
	ipFlagMoreFrags  = 0x2000
	ipFragOffsetMask = 0x1fff
)

// Packet builders for tests.

func ip(src, dst string, proto uint8, l4 []byte) []byte {
	b := make([]byte, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	b[8] = 64
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[20:], l4)
	return b
}

func tcpHdr(sport, dport uint16, flags uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = flags
	return b
}

func udpHdr(sport, dport uint16) []byte {
	b := make([]byte, 8+4)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], 12)
	return b
}

func icmpHdr(typ uint8, id uint16, quoted []byte) []byte {
	b := make([]byte, 8+len(quoted))
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], id)
	copy(b[8:], quoted)
	return b
}

const (
	syn    = tcpFlagSYN
	ack    = tcpFlagACK
	synAck = tcpFlagSYN | tcpFlagACK
)

func tcp(src, dst string, sport, dport uint16, flags uint8) []byte {
	return ip(src, dst, protoTCP, tcpHdr(sport, dport, flags))
}

func udp(src, dst string, sport, dport uint16) []byte {
	return ip(src, dst, protoUDP, udpHdr(sport, dport))
}

func icmp(src, dst string, typ uint8, id uint16) []byte {
	return ip(src, dst, protoICMP, icmpHdr(typ, id, nil))
}

// fragment makes pkt a fragment: offset in 8-byte units, more fragments.
func fragment(pkt []byte, id uint16, offset uint16, more bool) []byte {
	binary.BigEndian.PutUint16(pkt[4:], id)
	v := offset & ipFragOffsetMask
	if more {
		v |= ipFlagMoreFrags
	}
	binary.BigEndian.PutUint16(pkt[6:], v)
	return pkt
}

// clock is a hand-moved clock.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Duration      { return time.Duration(c.t.Load()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// selfAddr is the address of the node under test (self in filter_test.go).
var selfAddr = netip.MustParseAddr(self)
