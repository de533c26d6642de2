package packet

import "encoding/binary"

// Sum adds b, read as big-endian 16-bit words (an odd last byte padded with
// zero), to the partial sum sum and returns the new partial sum, folded to
// 16 bits. Use it for pseudo-headers: Checksum(body, Sum(pseudo, 0)).
func Sum(b []byte, sum uint32) uint32 {
	s := uint64(sum)
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b[0:4])) + uint64(binary.BigEndian.Uint32(b[4:8]))
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint32(s)
}

// Checksum is the Internet checksum (RFC 1071) of b, started from the
// partial sum sum (0, or Sum of a pseudo-header). Written into its field
// of a header whose field was zero, it makes Checksum of the whole 0.
func Checksum(b []byte, sum uint32) uint16 {
	return ^uint16(Sum(b, sum))
}

// PutIPv4HeaderChecksum computes and writes the header checksum of the
// IPv4 header at the start of b (whose length field is ihl).
func PutIPv4HeaderChecksum(b []byte) {
	ihl := int(b[0]&0x0f) * 4
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:12], Checksum(b[:ihl], 0))
}

// PseudoHeaderSum4 is the partial sum of the IPv4 pseudo-header (RFC 793,
// RFC 768) of an upper-layer message of length n and protocol proto carried
// by the IPv4 header h.
func PseudoHeaderSum4(h []byte, n int, proto uint8) uint32 {
	return Sum(h[12:20], uint32(n)+uint32(proto))
}

// PseudoHeaderSum6 is the partial sum of the IPv6 pseudo-header (RFC 8200
// 8.1) of an upper-layer message of length n and protocol proto carried by
// the IPv6 header h.
func PseudoHeaderSum6(h []byte, n int, proto uint8) uint32 {
	return Sum(h[8:40], uint32(n)+uint32(proto))
}
