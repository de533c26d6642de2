// Package packettest builds IP packets for tests of the data plane: IPv4
// and IPv6 headers around TCP, UDP and ICMP headers, with valid IPv4 header
// checksums (transport checksums are left zero unless a builder says
// otherwise). Every builder returns a fresh slice.
package packettest

import (
	"encoding/binary"
	"net/netip"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
)

// IPv4 is an IPv4 packet from src to dst (identification 0x1234, TTL 64,
// no options) carrying the transport message l4 of protocol proto.
func IPv4(src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	b := make([]byte, packet.IPv4HeaderLen+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[packet.IPv4HeaderLen:], l4)
	packet.PutIPv4HeaderChecksum(b)
	return b
}

// IPv6 is an IPv6 packet from src to dst (hop limit 64) carrying the
// transport message l4 with next header next.
func IPv6(src, dst netip.Addr, next uint8, l4 []byte) []byte {
	b := make([]byte, packet.IPv6HeaderLen+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(l4)))
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	copy(b[packet.IPv6HeaderLen:], l4)
	return b
}

// TCP is a 20-byte TCP header with the given ports and flags.
func TCP(sport, dport uint16, flags uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = flags
	return b
}

// UDP is a UDP datagram with the given ports carrying payload.
func UDP(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, packet.UDPHeaderLen+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[packet.UDPHeaderLen:], payload)
	return b
}

// ICMP is an ICMP message of type typ (code 0) with the identifier and
// sequence number of an echo, followed by body (an error's quote).
func ICMP(typ uint8, id, seq uint16, body []byte) []byte {
	b := make([]byte, packet.ICMPHeaderLen+len(body))
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[packet.ICMPHeaderLen:], body)
	return b
}

// Fragment makes the IPv4 packet pkt a fragment of datagram id at offset
// (in 8-byte units), with more fragments to follow or not, and returns it.
func Fragment(pkt []byte, id uint16, offset uint16, more bool) []byte {
	binary.BigEndian.PutUint16(pkt[4:], id)
	v := offset & 0x1fff
	if more {
		v |= 0x2000
	}
	binary.BigEndian.PutUint16(pkt[6:], v)
	packet.PutIPv4HeaderChecksum(pkt)
	return pkt
}
