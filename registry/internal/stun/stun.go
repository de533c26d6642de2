// Package stun is the registry's STUN responder: RFC 5389 Binding requests
// over UDP answered with the sender's address in XOR-MAPPED-ADDRESS (and
// MAPPED-ADDRESS for RFC 3489 clients), so nodes learn their public address
// and port.
//
// Message layout (RFC 5389 section 6), big endian:
//
//	0      2       4              8                      20
//	| type | length | magic cookie | transaction ID (12) | attributes...
//
// The two top bits of type are zero; length counts the attribute bytes and
// is a multiple of 4; each attribute is type(2) length(2) value, padded to
// 4 bytes.
package stun

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
)

// Protocol constants under their RFC 5389 names.
const (
	MagicCookie        = 0x2112A442
	HeaderSize         = 20
	BindingRequest     = 0x0001
	BindingSuccess     = 0x0101
	BindingError       = 0x0111
	AttrMappedAddress  = 0x0001
	AttrUsername       = 0x0006
	AttrMessageIntegr  = 0x0008
	AttrErrorCode      = 0x0009
	AttrUnknownAttrs   = 0x000A
	AttrRealm          = 0x0014
	AttrNonce          = 0x0015
	AttrXORMapped      = 0x0020
	AttrSoftware       = 0x8022
	AttrFingerprint    = 0x8028
	fingerprintXOR     = 0x5354554e
	familyIPv4         = 0x01
	familyIPv6         = 0x02
	maxUnknownReported = 8
)

// Errors from Parse.
var (
	ErrNotSTUN       = errors.New("not a STUN message")
	ErrNotBinding    = errors.New("not a Binding request")
	ErrMalformed     = errors.New("malformed STUN attributes")
	ErrBadFingerprnt = errors.New("STUN fingerprint mismatch")
)

// Request is a parsed Binding request.
type Request struct {
	TxID [12]byte
	// Unknown lists comprehension-required attributes the responder does
	// not understand (at most maxUnknownReported); a request with any gets
	// a 420 error answer.
	Unknown    [maxUnknownReported]uint16
	NumUnknown int
}

// Parse parses a Binding request without allocating.
func Parse(b []byte, req *Request) error {
	if len(b) < HeaderSize || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != MagicCookie {
		return ErrNotSTUN
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n%4 != 0 || HeaderSize+n != len(b) {
		return ErrNotSTUN
	}
	if binary.BigEndian.Uint16(b[0:2]) != BindingRequest {
		return ErrNotBinding
	}
	copy(req.TxID[:], b[8:20])
	req.NumUnknown = 0
	for off := HeaderSize; off < len(b); {
		if len(b)-off < 4 {
			return ErrMalformed
		}
		typ := binary.BigEndian.Uint16(b[off:])
		alen := int(binary.BigEndian.Uint16(b[off+2:]))
		end := off + 4 + alen
		if end > len(b) {
			return ErrMalformed
		}
		switch typ {
		case AttrFingerprint:
			if alen != 4 || end != len(b) {
				return ErrMalformed
			}
			// The CRC covers the message up to this attribute, with the
			// header's length already counting the fingerprint.
			want := crc32.ChecksumIEEE(b[:off]) ^ fingerprintXOR
			if binary.BigEndian.Uint32(b[off+4:]) != want {
				return ErrBadFingerprnt
			}
		case AttrMappedAddress, AttrUsername, AttrMessageIntegr, AttrErrorCode, AttrUnknownAttrs,
			AttrRealm, AttrNonce, AttrXORMapped:
			// Understood (and ignored: Binding needs no credentials here).
		default:
			if typ < 0x8000 && req.NumUnknown < maxUnknownReported {
				req.Unknown[req.NumUnknown] = typ
				req.NumUnknown++
			}
		}
		off = end + (4-alen%4)%4
		if off > len(b) {
			return ErrMalformed
		}
	}
	return nil
}

// AppendResponse appends the answer to req from src to dst: a Binding
// success with XOR-MAPPED-ADDRESS, MAPPED-ADDRESS and FINGERPRINT, or a 420
// error listing the unknown attributes.
func AppendResponse(dst []byte, req *Request, src netip.AddrPort) []byte {
	start := len(dst)
	typ := uint16(BindingSuccess)
	if req.NumUnknown > 0 {
		typ = BindingError
	}
	dst = binary.BigEndian.AppendUint16(dst, typ)
	dst = binary.BigEndian.AppendUint16(dst, 0) // length, patched below
	dst = binary.BigEndian.AppendUint32(dst, MagicCookie)
	dst = append(dst, req.TxID[:]...)
	if req.NumUnknown > 0 {
		// ERROR-CODE 420 Unknown Attribute.
		reason := "Unknown Attribute"
		dst = appendAttrHeader(dst, AttrErrorCode, 4+len(reason))
		dst = append(dst, 0, 0, 4, 20)
		dst = append(dst, reason...)
		dst = pad(dst, len(reason))
		dst = appendAttrHeader(dst, AttrUnknownAttrs, 2*req.NumUnknown)
		for i := 0; i < req.NumUnknown; i++ {
			dst = binary.BigEndian.AppendUint16(dst, req.Unknown[i])
		}
		dst = pad(dst, 2*req.NumUnknown)
	} else {
		dst = appendAddr(dst, AttrXORMapped, src, req.TxID, true)
		dst = appendAddr(dst, AttrMappedAddress, src, req.TxID, false)
	}
	// FINGERPRINT: the length must include it when the CRC is computed.
	binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start-HeaderSize+8))
	crc := crc32.ChecksumIEEE(dst[start:]) ^ fingerprintXOR
	dst = appendAttrHeader(dst, AttrFingerprint, 4)
	dst = binary.BigEndian.AppendUint32(dst, crc)
	return dst
}

func appendAttrHeader(dst []byte, typ uint16, n int) []byte {
	dst = binary.BigEndian.AppendUint16(dst, typ)
	return binary.BigEndian.AppendUint16(dst, uint16(n))
}

func pad(dst []byte, n int) []byte {
	for i := 0; i < (4-n%4)%4; i++ {
		dst = append(dst, 0)
	}
	return dst
}

func appendAddr(dst []byte, typ uint16, src netip.AddrPort, txID [12]byte, xor bool) []byte {
	addr := src.Addr().Unmap()
	port := src.Port()
	if xor {
		port ^= MagicCookie >> 16
	}
	if addr.Is4() {
		dst = appendAttrHeader(dst, typ, 8)
		dst = append(dst, 0, familyIPv4)
		dst = binary.BigEndian.AppendUint16(dst, port)
		a := addr.As4()
		if xor {
			binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(a[:])^MagicCookie)
		}
		return append(dst, a[:]...)
	}
	dst = appendAttrHeader(dst, typ, 20)
	dst = append(dst, 0, familyIPv6)
	dst = binary.BigEndian.AppendUint16(dst, port)
	a := addr.As16()
	if xor {
		var key [16]byte
		binary.BigEndian.PutUint32(key[:4], MagicCookie)
		copy(key[4:], txID[:])
		for i := range a {
			a[i] ^= key[i]
		}
	}
	return append(dst, a[:]...)
}
