// Package relaywire is the wire format between a node and a WebSocket relay.
//
// Every message is one binary WebSocket message. Byte 0 is the message type.
// Integers are big-endian. Protocol version: 1.
//
// A connection starts with a challenge from the relay and the node's signed
// answer; after that both sides exchange only packet messages.
//
// Challenge (relay -> node), the first message on a connection:
//
//	[0]       0x01 TypeChallenge
//	[1]       protocol version (1)
//	[2:34]    nonce: 32 random bytes, fresh for each connection
//	[34:42]   relay time, unix milliseconds, uint64
//	[42]      n: length of the relay identity, 1..255
//	[43:43+n] relay identity (the relay's configured name, UTF-8)
//
// Auth (node -> relay), the answer:
//
//	[0]       0x02 TypeAuth
//	[1]       protocol version (1)
//	[2:34]    the node's ed25519 public key (nodekey.PublicKey)
//	[34:98]   ed25519 signature by that key over
//	          "tunnelmesh-relay-auth-v1\x00" || challenge message (all of its bytes) || public key
//
// The signature covers the relay's nonce, time and identity, so it is worth
// nothing on any other connection or relay: the relay cannot replay it, and
// an answer captured on one connection does not answer the next challenge.
//
// Ready (relay -> node), when the relay accepted the node:
//
//	[0]       0x03 TypeReady
//
// A relay refuses a node by closing the WebSocket with status 1008 (policy
// violation) and a short reason.
//
// Packet (both directions):
//
//	[0]       0x10 TypePacket
//	[1:33]    node key: from a node, the destination; from the relay, the source
//	[33:]     payload: one opaque, already encrypted datagram, 1..MaxPayload bytes
//
// The relay rewrites bytes [1:33] from the destination to the source key in
// place and forwards the message unchanged otherwise.
//
// Batch (both directions): several datagrams in one message, so a sender
// that has a queue of them pays for one WebSocket frame, TLS record and
// write instead of one each:
//
//	[0]       0x11 TypeBatch
//	then one or more records, back to back:
//	[0:32]    node key (as in a packet message: destination from a node,
//	          source from the relay)
//	[32:34]   n: payload length, uint16, 1..65535
//	[34:34+n] payload
//
// A batch is at most MaxMessageLen bytes and ends exactly after its last
// record. Its records mean the same as packet messages; the relay may split
// a node's batch and regroup the datagrams in its own batches.
//
// Unknown message types are an error.
package relaywire

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Version is the protocol version carried in the challenge and auth messages.
const Version = 1

// Message types (byte 0).
const (
	TypeChallenge byte = 0x01
	TypeAuth      byte = 0x02
	TypeReady     byte = 0x03
	TypePacket    byte = 0x10
	TypeBatch     byte = 0x11
)

// Sizes.
const (
	NonceLen      = 32
	MaxRelayIDLen = 255
	// ChallengeMinLen is the length of a challenge with a 1-byte identity.
	ChallengeMinLen = 43 + 1
	// MaxChallengeLen is the length of a challenge with the longest identity.
	MaxChallengeLen = 43 + MaxRelayIDLen
	AuthLen         = 2 + nodekey.PublicKeySize + ed25519.SignatureSize
	ReadyLen        = 1
	// PacketHeaderLen is the type byte and the node key before the payload.
	PacketHeaderLen = 1 + nodekey.PublicKeySize
	// MaxPayload is the largest datagram a packet message carries.
	MaxPayload = 65535
	// MaxMessageLen is the largest message either side sends.
	MaxMessageLen = PacketHeaderLen + MaxPayload
	// BatchRecordHeaderLen is the key and length before each batch payload.
	BatchRecordHeaderLen = nodekey.PublicKeySize + 2
)

const authContext = "tunnelmesh-relay-auth-v1\x00"

// Errors returned by the parsers; check them with errors.Is.
var (
	ErrShort       = errors.New("relay message too short")
	ErrLong        = errors.New("relay message too long")
	ErrType        = errors.New("unexpected relay message type")
	ErrVersion     = errors.New("unsupported relay protocol version")
	ErrRelayID     = errors.New("invalid relay identity")
	ErrEmptyPacket = errors.New("empty relay packet")
)

// Challenge is the relay's first message.
type Challenge struct {
	Nonce   [NonceLen]byte
	Time    time.Time // carried with millisecond precision
	RelayID string
}

// ValidRelayID reports whether id can be carried in a challenge: 1..255 bytes
// of valid UTF-8.
func ValidRelayID(id string) error {
	if len(id) == 0 || len(id) > MaxRelayIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("%w: want 1..%d bytes of UTF-8", ErrRelayID, MaxRelayIDLen)
	}
	return nil
}

// Append appends the encoded challenge to b.
func (c Challenge) Append(b []byte) ([]byte, error) {
	if err := ValidRelayID(c.RelayID); err != nil {
		return b, fmt.Errorf("encode challenge: %w", err)
	}
	if ms := c.Time.UnixMilli(); ms < 0 || ms > 1<<62 {
		return b, fmt.Errorf("encode challenge: time %v out of range", c.Time)
	}
	b = append(b, TypeChallenge, Version)
	b = append(b, c.Nonce[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Time.UnixMilli()))
	b = append(b, byte(len(c.RelayID)))
	return append(b, c.RelayID...), nil
}

// ParseChallenge decodes a challenge message.
func ParseChallenge(b []byte) (Challenge, error) {
	var c Challenge
	if len(b) < ChallengeMinLen {
		return c, fmt.Errorf("parse challenge: %w", ErrShort)
	}
	if b[0] != TypeChallenge {
		return c, fmt.Errorf("parse challenge: %w 0x%02x", ErrType, b[0])
	}
	if b[1] != Version {
		return c, fmt.Errorf("parse challenge: %w %d", ErrVersion, b[1])
	}
	copy(c.Nonce[:], b[2:34])
	ms := binary.BigEndian.Uint64(b[34:42])
	if ms > 1<<62 {
		return Challenge{}, fmt.Errorf("parse challenge: time out of range")
	}
	c.Time = time.UnixMilli(int64(ms))
	n := int(b[42])
	switch {
	case len(b) < 43+n:
		return Challenge{}, fmt.Errorf("parse challenge: %w", ErrShort)
	case len(b) > 43+n:
		return Challenge{}, fmt.Errorf("parse challenge: %w", ErrLong)
	}
	c.RelayID = string(b[43:])
	if err := ValidRelayID(c.RelayID); err != nil {
		return Challenge{}, fmt.Errorf("parse challenge: %w", err)
	}
	return c, nil
}

// Auth is the node's answer to a challenge.
type Auth struct {
	Key nodekey.PublicKey
	Sig [ed25519.SignatureSize]byte
}

// signedMessage returns what an Auth signs for the challenge message chal.
func signedMessage(chal []byte, pub nodekey.PublicKey) []byte {
	m := make([]byte, 0, len(authContext)+len(chal)+len(pub))
	m = append(m, authContext...)
	m = append(m, chal...)
	return append(m, pub[:]...)
}

// SignAuth answers the challenge message chal (all of its bytes, as received)
// with key.
func SignAuth(key nodekey.PrivateKey, chal []byte) Auth {
	a := Auth{Key: key.Public()}
	copy(a.Sig[:], key.Sign(signedMessage(chal, a.Key)))
	return a
}

// Verify reports whether a is a valid answer to the challenge message chal.
// A key that is not a valid point, or is of small order (the all-zero key,
// the identity and the other torsion points), never verifies: ed25519
// signatures by such keys can be made without any private key.
func (a Auth) Verify(chal []byte) bool {
	return a.Key.Validate() == nil && a.Key.Verify(signedMessage(chal, a.Key), a.Sig[:])
}

// Append appends the encoded auth message to b.
func (a Auth) Append(b []byte) []byte {
	b = append(b, TypeAuth, Version)
	b = append(b, a.Key[:]...)
	return append(b, a.Sig[:]...)
}

// ParseAuth decodes an auth message. It does not verify the signature.
func ParseAuth(b []byte) (Auth, error) {
	var a Auth
	switch {
	case len(b) < AuthLen:
		return a, fmt.Errorf("parse auth: %w", ErrShort)
	case len(b) > AuthLen:
		return a, fmt.Errorf("parse auth: %w", ErrLong)
	case b[0] != TypeAuth:
		return a, fmt.Errorf("parse auth: %w 0x%02x", ErrType, b[0])
	case b[1] != Version:
		return a, fmt.Errorf("parse auth: %w %d", ErrVersion, b[1])
	}
	copy(a.Key[:], b[2:34])
	copy(a.Sig[:], b[34:])
	return a, nil
}

// AppendReady appends a ready message to b.
func AppendReady(b []byte) []byte { return append(b, TypeReady) }

// ParseReady checks that b is a ready message.
func ParseReady(b []byte) error {
	switch {
	case len(b) < ReadyLen:
		return fmt.Errorf("parse ready: %w", ErrShort)
	case b[0] != TypeReady:
		return fmt.Errorf("parse ready: %w 0x%02x", ErrType, b[0])
	case len(b) > ReadyLen:
		return fmt.Errorf("parse ready: %w", ErrLong)
	}
	return nil
}

// AppendPacket appends a packet message for key and payload to b. It does not
// check the payload size; senders check it with CheckPayload first.
func AppendPacket(b []byte, key nodekey.PublicKey, payload []byte) []byte {
	b = append(b, TypePacket)
	b = append(b, key[:]...)
	return append(b, payload...)
}

// CheckPayload returns an error if p cannot be carried in a packet message.
func CheckPayload(p []byte) error {
	switch {
	case len(p) == 0:
		return ErrEmptyPacket
	case len(p) > MaxPayload:
		return fmt.Errorf("%w: payload %d bytes, max %d", ErrLong, len(p), MaxPayload)
	}
	return nil
}

// ParsePacket decodes a packet message. The payload aliases b; it does not
// allocate.
func ParsePacket(b []byte) (key nodekey.PublicKey, payload []byte, err error) {
	switch {
	case len(b) < 1:
		return key, nil, fmt.Errorf("parse packet: %w", ErrShort)
	case b[0] != TypePacket:
		return key, nil, fmt.Errorf("parse packet: %w 0x%02x", ErrType, b[0])
	case len(b) < PacketHeaderLen:
		return key, nil, fmt.Errorf("parse packet: %w", ErrShort)
	}
	payload = b[PacketHeaderLen:]
	if err := CheckPayload(payload); err != nil {
		return nodekey.PublicKey{}, nil, fmt.Errorf("parse packet: %w", err)
	}
	copy(key[:], b[1:PacketHeaderLen])
	return key, payload, nil
}

// SetPacketKey overwrites the node key of the packet message b in place, as
// the relay does when it forwards (destination -> source). b must be a packet
// message that ParsePacket accepted.
func SetPacketKey(b []byte, key nodekey.PublicKey) { copy(b[1:PacketHeaderLen], key[:]) }

// AppendBatchRecord appends one record to b, which must start with
// TypeBatch (append it first). It does not check sizes; senders check the
// payload with CheckPayload and keep the batch within MaxMessageLen.
func AppendBatchRecord(b []byte, key nodekey.PublicKey, payload []byte) []byte {
	b = append(b, key[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...)
}

// BatchReader walks the records of a batch message without allocating.
type BatchReader struct {
	rest []byte
}

// ParseBatch checks the batch header of b and returns a reader over its
// records. The payloads it returns alias b.
func ParseBatch(b []byte) (BatchReader, error) {
	switch {
	case len(b) < 1+BatchRecordHeaderLen+1:
		return BatchReader{}, fmt.Errorf("parse batch: %w", ErrShort)
	case b[0] != TypeBatch:
		return BatchReader{}, fmt.Errorf("parse batch: %w 0x%02x", ErrType, b[0])
	case len(b) > MaxMessageLen:
		return BatchReader{}, fmt.Errorf("parse batch: %w", ErrLong)
	}
	return BatchReader{rest: b[1:]}, nil
}

// Next returns the next record; ok is false after the last one. A malformed
// record is an error, and the reader stops there (records before it stay
// valid).
func (r *BatchReader) Next() (key nodekey.PublicKey, payload []byte, ok bool, err error) {
	if len(r.rest) == 0 {
		return key, nil, false, nil
	}
	if len(r.rest) < BatchRecordHeaderLen {
		r.rest = nil
		return key, nil, false, fmt.Errorf("parse batch record: %w", ErrShort)
	}
	n := int(binary.BigEndian.Uint16(r.rest[nodekey.PublicKeySize:BatchRecordHeaderLen]))
	if n == 0 {
		r.rest = nil
		return key, nil, false, fmt.Errorf("parse batch record: %w", ErrEmptyPacket)
	}
	if len(r.rest) < BatchRecordHeaderLen+n {
		r.rest = nil
		return key, nil, false, fmt.Errorf("parse batch record: %w", ErrShort)
	}
	copy(key[:], r.rest[:nodekey.PublicKeySize])
	payload = r.rest[BatchRecordHeaderLen : BatchRecordHeaderLen+n]
	r.rest = r.rest[BatchRecordHeaderLen+n:]
	return key, payload, true, nil
}
