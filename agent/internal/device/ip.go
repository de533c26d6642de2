package device

import (
	"encoding/binary"
	"net/netip"
)

// dstAddr returns the destination address of an IPv4 or IPv6 packet.
func dstAddr(pkt []byte) (netip.Addr, bool) {
	if len(pkt) < 1 {
		return netip.Addr{}, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(pkt[16:20])), true
	case 6:
		if len(pkt) < 40 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16([16]byte(pkt[24:40])), true
	}
	return netip.Addr{}, false
}

// trimIPPacket checks that pkt (a decrypted, possibly padded plaintext)
// holds an IP packet, and returns it without padding, with its source. An
// IPv6 source stays IPv6 even when it is IPv4-mapped (::ffff:a.b.c.d), so
// it never equals a peer's IPv4 mesh address (WireGuard keeps IPv4 and
// IPv6 allowed IPs apart the same way).
func trimIPPacket(pkt []byte) ([]byte, netip.Addr, bool) {
	if len(pkt) < 1 {
		return nil, netip.Addr{}, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return nil, netip.Addr{}, false
		}
		n := int(binary.BigEndian.Uint16(pkt[2:4]))
		if n < 20 || n > len(pkt) || int(pkt[0]&0x0f)*4 < 20 {
			return nil, netip.Addr{}, false
		}
		return pkt[:n], netip.AddrFrom4([4]byte(pkt[12:16])), true
	case 6:
		if len(pkt) < 40 {
			return nil, netip.Addr{}, false
		}
		n := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if n > len(pkt) {
			return nil, netip.Addr{}, false
		}
		return pkt[:n], netip.AddrFrom16([16]byte(pkt[8:24])), true
	}
	return nil, netip.Addr{}, false
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
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

const (
	icmpEchoReply   = 0
	icmpEchoRequest = 8
	protoICMP       = 1
)

// putICMPEcho writes an IPv4 ICMP echo message of the given type into b and
// returns its length. The payload is 16 bytes: 8 of them carry nanos.
func putICMPEcho(b []byte, typ uint8, src, dst netip.Addr, id, seq uint16, nanos int64) int {
	const total = 20 + 8 + 16
	clear(b[:total])
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], total)
	b[8] = 64 // TTL
	b[9] = protoICMP
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:20]))
	icmp := b[20:total]
	icmp[0] = typ
	binary.BigEndian.PutUint16(icmp[4:], id)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	binary.BigEndian.PutUint64(icmp[8:], uint64(nanos))
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return total
}
