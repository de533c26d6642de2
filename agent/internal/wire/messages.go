package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Parse errors. Every parser returns one of these (wrapped) for bad input.
var (
	ErrTruncated   = errors.New("message truncated")
	ErrBadLength   = errors.New("message length invalid")
	ErrUnknownType = errors.New("unknown message type")
	ErrBadVersion  = errors.New("unsupported protocol version")
	ErrReserved    = errors.New("reserved bytes not zero")
)

// Initiation is a handshake initiation (type 1).
type Initiation struct {
	Sender uint32
	Noise  [InitiationNoiseSize]byte // e || enc(s) || enc(timestamp)
	MAC1   [MACSize]byte
	MAC2   [MACSize]byte
}

// Response is a handshake response (type 2).
type Response struct {
	Sender   uint32
	Receiver uint32
	Noise    [ResponseNoiseSize]byte // e || enc(empty)
	MAC1     [MACSize]byte
	MAC2     [MACSize]byte
}

// CookieReply is a cookie reply (type 3).
type CookieReply struct {
	Receiver uint32
	Nonce    [CookieNonceSize]byte
	Cookie   [CookieSize + 16]byte // encrypted cookie || tag
}

// Type checks the common 4-byte prefix of b and returns the message type.
// It does not check the length against the type; the Parse functions do.
func Type(b []byte) (uint8, error) {
	if len(b) < 4 {
		return 0, ErrTruncated
	}
	if b[1] != Version {
		return 0, ErrBadVersion
	}
	if b[2] != 0 || b[3] != 0 {
		return 0, ErrReserved
	}
	switch b[0] {
	case TypeInitiation, TypeResponse, TypeCookieReply, TypeTransport:
		return b[0], nil
	}
	return 0, ErrUnknownType
}

func putPrefix(b []byte, typ uint8) {
	b[0] = typ
	b[1] = Version
	b[2] = 0
	b[3] = 0
}

func checkFixed(b []byte, typ uint8, size int) error {
	t, err := Type(b)
	if err != nil {
		return err
	}
	if t != typ {
		return fmt.Errorf("%w: got %d, want %d", ErrUnknownType, t, typ)
	}
	if len(b) != size {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadLength, len(b), size)
	}
	return nil
}

// MarshalTo writes m into b, which must hold InitiationSize bytes, and
// returns b[:InitiationSize].
func (m *Initiation) MarshalTo(b []byte) []byte {
	b = b[:InitiationSize]
	putPrefix(b, TypeInitiation)
	binary.LittleEndian.PutUint32(b[4:], m.Sender)
	copy(b[8:], m.Noise[:])
	copy(b[116:], m.MAC1[:])
	copy(b[132:], m.MAC2[:])
	return b
}

// ParseInitiation decodes a handshake initiation.
func ParseInitiation(b []byte) (Initiation, error) {
	var m Initiation
	if err := checkFixed(b, TypeInitiation, InitiationSize); err != nil {
		return m, fmt.Errorf("parse initiation: %w", err)
	}
	m.Sender = binary.LittleEndian.Uint32(b[4:])
	copy(m.Noise[:], b[8:116])
	copy(m.MAC1[:], b[116:132])
	copy(m.MAC2[:], b[132:148])
	return m, nil
}

// MarshalTo writes m into b, which must hold ResponseSize bytes, and returns
// b[:ResponseSize].
func (m *Response) MarshalTo(b []byte) []byte {
	b = b[:ResponseSize]
	putPrefix(b, TypeResponse)
	binary.LittleEndian.PutUint32(b[4:], m.Sender)
	binary.LittleEndian.PutUint32(b[8:], m.Receiver)
	copy(b[12:], m.Noise[:])
	copy(b[60:], m.MAC1[:])
	copy(b[76:], m.MAC2[:])
	return b
}

// ParseResponse decodes a handshake response.
func ParseResponse(b []byte) (Response, error) {
	var m Response
	if err := checkFixed(b, TypeResponse, ResponseSize); err != nil {
		return m, fmt.Errorf("parse response: %w", err)
	}
	m.Sender = binary.LittleEndian.Uint32(b[4:])
	m.Receiver = binary.LittleEndian.Uint32(b[8:])
	copy(m.Noise[:], b[12:60])
	copy(m.MAC1[:], b[60:76])
	copy(m.MAC2[:], b[76:92])
	return m, nil
}

// MarshalTo writes m into b, which must hold CookieReplySize bytes, and
// returns b[:CookieReplySize].
func (m *CookieReply) MarshalTo(b []byte) []byte {
	b = b[:CookieReplySize]
	putPrefix(b, TypeCookieReply)
	binary.LittleEndian.PutUint32(b[4:], m.Receiver)
	copy(b[8:], m.Nonce[:])
	copy(b[32:], m.Cookie[:])
	return b
}

// ParseCookieReply decodes a cookie reply.
func ParseCookieReply(b []byte) (CookieReply, error) {
	var m CookieReply
	if err := checkFixed(b, TypeCookieReply, CookieReplySize); err != nil {
		return m, fmt.Errorf("parse cookie reply: %w", err)
	}
	m.Receiver = binary.LittleEndian.Uint32(b[4:])
	copy(m.Nonce[:], b[8:32])
	copy(m.Cookie[:], b[32:64])
	return m, nil
}

// PutTransportHeader writes a transport header into b[:TransportHeaderSize].
func PutTransportHeader(b []byte, receiver uint32, counter uint64) {
	_ = b[TransportHeaderSize-1]
	putPrefix(b, TypeTransport)
	binary.LittleEndian.PutUint32(b[4:], receiver)
	binary.LittleEndian.PutUint64(b[8:], counter)
}

// ParseTransportHeader decodes the header of a transport message. b is the
// whole message; it must be at least TransportMinSize bytes. It does not
// allocate, so it may run per packet.
func ParseTransportHeader(b []byte) (receiver uint32, counter uint64, err error) {
	if len(b) < TransportMinSize {
		return 0, 0, ErrTruncated
	}
	if b[0] != TypeTransport {
		return 0, 0, ErrUnknownType
	}
	if b[1] != Version {
		return 0, 0, ErrBadVersion
	}
	if b[2] != 0 || b[3] != 0 {
		return 0, 0, ErrReserved
	}
	return binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint64(b[8:]), nil
}

// PaddedLen returns the plaintext length n padded to a multiple of
// TransportPaddingMulti, but never beyond limit (the tunnel MTU) when n fits it.
func PaddedLen(n, limit int) int {
	p := (n + TransportPaddingMulti - 1) &^ (TransportPaddingMulti - 1)
	if p > limit && n <= limit {
		return limit
	}
	return p
}
