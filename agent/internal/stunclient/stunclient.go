// Package stunclient is the node's side of STUN (RFC 5389): it builds
// Binding requests and parses the success responses of the registry's STUN
// responder, so the node learns the public address and port its UDP socket
// maps to. It sends nothing itself: the caller sends the request on the data
// plane's own socket (transport.Bind.SendUDP), so the mapping learned is the
// data plane's, and hands the answer to Parse.
//
// Message layout (RFC 5389 section 6), big endian:
//
//	0      2       4              8                      20
//	| type | length | magic cookie | transaction ID (12) | attributes...
//
// Attributes are type(2) length(2) value, padded to 4 bytes. The address is
// read from XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS.
package stunclient

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
)

// Protocol constants under their RFC 5389 names.
const (
	MagicCookie       = 0x2112A442
	HeaderSize        = 20
	BindingRequest    = 0x0001
	BindingSuccess    = 0x0101
	AttrMappedAddress = 0x0001
	AttrXORMapped     = 0x0020
	familyIPv4        = 0x01
	familyIPv6        = 0x02
)

// Errors from Parse.
var (
	ErrNotSTUN   = errors.New("not a STUN binding success")
	ErrOtherTxID = errors.New("STUN answer to another transaction")
	ErrMalformed = errors.New("malformed STUN attributes")
	ErrNoAddress = errors.New("STUN answer without a mapped address")
)

// TxID is a STUN transaction ID.
type TxID [12]byte

// NewTxID returns a random transaction ID.
func NewTxID() TxID {
	var id TxID
	rand.Read(id[:])
	return id
}

// Request returns a Binding request with id and no attributes.
func Request(id TxID) []byte {
	b := make([]byte, HeaderSize)
	binary.BigEndian.PutUint16(b[0:], BindingRequest)
	binary.BigEndian.PutUint32(b[4:], MagicCookie)
	copy(b[8:], id[:])
	return b
}

// Parse reads the mapped address from a Binding success answering id.
func Parse(b []byte, id TxID) (netip.AddrPort, error) {
	if len(b) < HeaderSize || binary.BigEndian.Uint16(b[0:]) != BindingSuccess ||
		binary.BigEndian.Uint32(b[4:]) != MagicCookie {
		return netip.AddrPort{}, ErrNotSTUN
	}
	if TxID(b[8:20]) != id {
		return netip.AddrPort{}, ErrOtherTxID
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n%4 != 0 || HeaderSize+n > len(b) {
		return netip.AddrPort{}, ErrMalformed
	}
	attrs := b[HeaderSize : HeaderSize+n]
	var mapped netip.AddrPort
	for len(attrs) > 0 {
		if len(attrs) < 4 {
			return netip.AddrPort{}, ErrMalformed
		}
		typ, l := binary.BigEndian.Uint16(attrs[0:]), int(binary.BigEndian.Uint16(attrs[2:]))
		padded := (l + 3) &^ 3
		if 4+padded > len(attrs) {
			return netip.AddrPort{}, ErrMalformed
		}
		v := attrs[4 : 4+l]
		switch typ {
		case AttrXORMapped:
			ap, err := parseAddr(v, b[4:20], true)
			if err != nil {
				return netip.AddrPort{}, err
			}
			return ap, nil
		case AttrMappedAddress:
			ap, err := parseAddr(v, nil, false)
			if err != nil {
				return netip.AddrPort{}, err
			}
			mapped = ap
		}
		attrs = attrs[4+padded:]
	}
	if !mapped.IsValid() {
		return netip.AddrPort{}, ErrNoAddress
	}
	return mapped, nil
}

// parseAddr reads an address attribute value; with xor, key is the magic
// cookie followed by the transaction ID.
func parseAddr(v, key []byte, xor bool) (netip.AddrPort, error) {
	if len(v) < 4 {
		return netip.AddrPort{}, ErrMalformed
	}
	port := binary.BigEndian.Uint16(v[2:])
	var ip []byte
	switch v[1] {
	case familyIPv4:
		if len(v) != 8 {
			return netip.AddrPort{}, ErrMalformed
		}
		ip = append([]byte(nil), v[4:8]...)
	case familyIPv6:
		if len(v) != 20 {
			return netip.AddrPort{}, ErrMalformed
		}
		ip = append([]byte(nil), v[4:20]...)
	default:
		return netip.AddrPort{}, ErrMalformed
	}
	if xor {
		port ^= uint16(MagicCookie >> 16)
		for i := range ip {
			ip[i] ^= key[i]
		}
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok || port == 0 {
		return netip.AddrPort{}, ErrMalformed
	}
	return netip.AddrPortFrom(a.Unmap(), port), nil
}
