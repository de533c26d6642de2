package filter

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet/packettest"
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
)

// Packet builders for tests.

func ip(src, dst string, proto uint8, l4 []byte) []byte {
	return packettest.IPv4(netip.MustParseAddr(src), netip.MustParseAddr(dst), proto, l4)
}

var (
	tcpHdr   = packettest.TCP
	fragment = packettest.Fragment
)

func udpHdr(sport, dport uint16) []byte { return packettest.UDP(sport, dport, make([]byte, 4)) }

func icmpHdr(typ uint8, id uint16, quoted []byte) []byte { return packettest.ICMP(typ, id, 0, quoted) }

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

// clock is a hand-moved clock.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Duration      { return time.Duration(c.t.Load()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// selfAddr is the address of the node under test (self in filter_test.go).
var selfAddr = netip.MustParseAddr(self)
