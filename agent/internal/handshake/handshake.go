// Package handshake runs TunnelMesh's Noise IKpsk2_25519_ChaChaPoly_BLAKE2s
// handshake with github.com/flynn/noise and yields a pair of session keys.
//
// The initiator knows the responder's static key (from the netmap) and sends
// an Initiation; the responder learns the initiator's static key from it,
// decides whether that key is one of its peers, checks the timestamp is newer
// than the last one it accepted from that peer (replayed initiations are
// refused), and answers with a Response. The mesh PSK is mixed in by the
// second message (psk2). The byte layouts are documented in package wire; the
// MAC fields are filled and checked by package cookie, not here.
//
// Nothing here is per packet: handshakes may allocate.
package handshake

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/flynn/noise"
	"golang.org/x/crypto/curve25519"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

var suite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

// Errors. A failed handshake message changes no state.
var (
	ErrDecrypt = errors.New("handshake message does not decrypt")
	ErrState   = errors.New("handshake in wrong state")
)

// StaticKey is a node's X25519 static key pair.
type StaticKey struct {
	Private [32]byte
	Public  [32]byte
}

// NewStaticKey derives the X25519 static key pair of a node key.
func NewStaticKey(k nodekey.PrivateKey) (StaticKey, error) {
	s := StaticKey{Private: k.X25519()}
	pub, err := curve25519.X25519(s.Private[:], curve25519.Basepoint)
	if err != nil {
		return StaticKey{}, fmt.Errorf("derive static key: %w", err)
	}
	copy(s.Public[:], pub)
	return s, nil
}

// Params are the fixed inputs of every handshake of one node.
type Params struct {
	Local    StaticKey
	PSK      [32]byte
	Prologue []byte // wire.Prologue(meshID)
	// Random is the entropy source for ephemeral keys; nil means crypto/rand.
	Random io.Reader
}

func (p *Params) random() io.Reader {
	if p.Random != nil {
		return p.Random
	}
	return rand.Reader
}

func (p *Params) state(initiator bool, peer []byte) (*noise.HandshakeState, error) {
	return noise.NewHandshakeState(noise.Config{
		CipherSuite:           suite,
		Random:                p.random(),
		Pattern:               noise.HandshakeIK,
		Initiator:             initiator,
		Prologue:              p.Prologue,
		PresharedKey:          p.PSK[:],
		PresharedKeyPlacement: 2,
		StaticKeypair:         noise.DHKey{Private: p.Local.Private[:], Public: p.Local.Public[:]},
		PeerStatic:            peer,
	})
}

// Keys are one session's transport keys.
type Keys struct {
	Send [32]byte
	Recv [32]byte
}

// Timestamp is a TAI64N timestamp; a later time compares greater.
type Timestamp [wire.TimestampSize]byte

// NewTimestamp returns the TAI64N form of t, with the nanoseconds rounded
// down to about 16 ms so the timestamp does not leak a precise clock.
func NewTimestamp(t time.Time) Timestamp {
	var ts Timestamp
	binary.BigEndian.PutUint64(ts[:], uint64(1)<<62+uint64(t.Unix())+10)
	binary.BigEndian.PutUint32(ts[8:], uint32(t.Nanosecond())&^(1<<24-1))
	return ts
}

// After reports whether ts is later than other.
func (ts Timestamp) After(other Timestamp) bool { return bytes.Compare(ts[:], other[:]) > 0 }

// Initiator is the initiator's side of one handshake attempt.
type Initiator struct {
	hs     *noise.HandshakeState
	Sender uint32
}

// Initiate starts a handshake with the peer whose static public key is peer
// and returns the initiation message (MACs zero).
func Initiate(p *Params, peer [32]byte, sender uint32, now time.Time) (*Initiator, wire.Initiation, error) {
	var m wire.Initiation
	hs, err := p.state(true, peer[:])
	if err != nil {
		return nil, m, fmt.Errorf("initiate handshake: %w", err)
	}
	ts := NewTimestamp(now)
	out, _, _, err := hs.WriteMessage(m.Noise[:0], ts[:])
	if err != nil {
		return nil, m, fmt.Errorf("initiate handshake: %w", err)
	}
	if len(out) != wire.InitiationNoiseSize {
		return nil, m, fmt.Errorf("initiate handshake: noise message is %d bytes, want %d", len(out), wire.InitiationNoiseSize)
	}
	m.Sender = sender
	return &Initiator{hs: hs, Sender: sender}, m, nil
}

// Finish consumes the responder's response and returns the session keys. On
// error the Initiator is unchanged and may consume another response.
func (i *Initiator) Finish(r *wire.Response) (Keys, error) {
	var k Keys
	if i.hs == nil {
		return k, fmt.Errorf("finish handshake: %w", ErrState)
	}
	if r.Receiver != i.Sender {
		return k, fmt.Errorf("finish handshake: response for index %d, want %d: %w", r.Receiver, i.Sender, ErrState)
	}
	var buf [16]byte
	payload, cs1, cs2, err := i.hs.ReadMessage(buf[:0], r.Noise[:])
	if err != nil || cs1 == nil || cs2 == nil {
		return k, fmt.Errorf("finish handshake: %w", ErrDecrypt)
	}
	if len(payload) != 0 {
		return k, fmt.Errorf("finish handshake: unexpected payload: %w", ErrDecrypt)
	}
	i.hs = nil
	k.Send = cs1.UnsafeKey()
	k.Recv = cs2.UnsafeKey()
	return k, nil
}

// Responder is the responder's side of one handshake, after the initiation
// was consumed.
type Responder struct {
	hs         *noise.HandshakeState
	PeerStatic [32]byte  // the initiator's static public key
	Timestamp  Timestamp // the initiation's timestamp
	Sender     uint32    // the initiation's sender index
}

// Consume decrypts an initiation. The caller must then check that
// PeerStatic is a current peer and Timestamp is newer than that peer's last,
// before calling Respond.
func Consume(p *Params, m *wire.Initiation) (*Responder, error) {
	hs, err := p.state(false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume initiation: %w", err)
	}
	var buf [wire.TimestampSize]byte
	payload, _, _, err := hs.ReadMessage(buf[:0], m.Noise[:])
	if err != nil {
		return nil, fmt.Errorf("consume initiation: %w", ErrDecrypt)
	}
	if len(payload) != wire.TimestampSize {
		return nil, fmt.Errorf("consume initiation: timestamp is %d bytes: %w", len(payload), ErrDecrypt)
	}
	r := &Responder{hs: hs, Sender: m.Sender}
	copy(r.PeerStatic[:], hs.PeerStatic())
	copy(r.Timestamp[:], payload)
	return r, nil
}

// Respond writes the response (MACs zero) with the responder's own index
// sender and returns it with the session keys. A Responder responds once.
func (r *Responder) Respond(sender uint32) (wire.Response, Keys, error) {
	var m wire.Response
	var k Keys
	if r.hs == nil {
		return m, k, fmt.Errorf("respond to handshake: %w", ErrState)
	}
	out, cs1, cs2, err := r.hs.WriteMessage(m.Noise[:0], nil)
	if err != nil || cs1 == nil || cs2 == nil {
		return m, k, fmt.Errorf("respond to handshake: %w", err)
	}
	if len(out) != wire.ResponseNoiseSize {
		return m, k, fmt.Errorf("respond to handshake: noise message is %d bytes, want %d", len(out), wire.ResponseNoiseSize)
	}
	r.hs = nil
	m.Sender = sender
	m.Receiver = r.Sender
	k.Send = cs2.UnsafeKey()
	k.Recv = cs1.UnsafeKey()
	return m, k, nil
}
