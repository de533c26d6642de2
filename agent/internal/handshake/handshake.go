// Package handshake runs TunnelMesh's Noise IKpsk2_25519_ChaChaPoly_BLAKE2s
// handshake and yields a pair of session keys. The Noise steps are written
// out (noise.go) as in wireguard-go, and checked byte for byte against
// github.com/flynn/noise in a test.
//
// The initiator knows the responder's static key (from the netmap) and sends
// an Initiation; the responder decrypts the initiator's static key from it
// and asks at once whether that key is one of its peers (an unknown key
// costs one Diffie-Hellman, not two), checks the timestamp is newer than the
// last one it accepted from that peer (replayed initiations are refused),
// and answers with a Response. The mesh PSK is mixed in by the second
// message (psk2); the prologue ends with a tag of the PSK, so the responder
// knows from the first message which PSK the initiator holds: during a
// rotation (Params.PrevPSK, PrevUntil) it accepts the previous one too,
// trying it only when the current one does not fit, at the cost of a few
// hashes. The byte layouts are documented in package wire; the MAC fields
// are filled and checked by package cookie, not here.
//
// A message that fails to check changes nothing: a forged response (even
// one whose ephemeral key is a low-order point) leaves the Initiator ready
// for the genuine one. Ephemeral keys, chaining keys and hashes are wiped
// when an Initiator or Responder finishes or is abandoned (Zero).
//
// Nothing here is per packet: handshakes may allocate.
package handshake

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.zx2c4.com/wireguard/tai64n"

	"golang.org/x/crypto/curve25519"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Errors. A failed handshake message changes no state.
var (
	ErrDecrypt = errors.New("handshake message does not decrypt")
	ErrState   = errors.New("handshake in wrong state")
	// ErrUnknownKey: the initiator's static key is not one the responder accepts.
	ErrUnknownKey = errors.New("initiator's static key is not a peer")
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
	Local StaticKey
	PSK   [32]byte // the mesh PSK: initiations use it, responders accept it
	// PrevPSK is the mesh's previous PSK after a rotation: responders
	// accept initiations sealed for it too until PrevUntil (zero: never).
	PrevPSK   [32]byte
	PrevUntil time.Time
	Prologue  []byte // wire.Prologue(meshID)
	// Random is the entropy source for ephemeral keys; nil means crypto/rand.
	Random io.Reader
}

func (p *Params) random() io.Reader {
	if p.Random != nil {
		return p.Random
	}
	return rand.Reader
}

// Keys are one session's transport keys.
type Keys struct {
	Send [32]byte
	Recv [32]byte
}

// Timestamp is a TAI64N timestamp, wireguard-go's type: a later time
// compares greater (Timestamp.After).
type Timestamp = tai64n.Timestamp

// NewTimestamp returns the TAI64N form of t, with the nanoseconds rounded
// down to about 16 ms so the timestamp does not leak a precise clock: the
// encoding of wireguard-go's tai64n.Now, for any time, because handshakes
// take their clock from the caller (tests, golden vectors).
func NewTimestamp(t time.Time) Timestamp {
	var ts Timestamp
	binary.BigEndian.PutUint64(ts[:], uint64(1)<<62+uint64(t.Unix())+10)
	binary.BigEndian.PutUint32(ts[8:], uint32(t.Nanosecond())&^(1<<24-1))
	return ts
}

// Initiator is the initiator's side of one handshake attempt.
type Initiator struct {
	sym    symmetric // after the first message
	e      [32]byte  // ephemeral private key
	local  [32]byte  // static private key
	psk    [32]byte
	done   bool
	Sender uint32
}

// Initiate starts a handshake with the peer whose static public key is peer
// and returns the initiation message (MACs zero). It uses p.PSK.
func Initiate(p *Params, peer [32]byte, sender uint32, now time.Time) (*Initiator, wire.Initiation, error) {
	var m wire.Initiation
	e, epub, err := newEphemeral(p.random())
	if err != nil {
		return nil, m, fmt.Errorf("initiate handshake: %w", err)
	}
	i := &Initiator{sym: start(p.Prologue, &p.PSK, &peer), e: e, local: p.Local.Private, psk: p.PSK, Sender: sender}
	fail := func(err error) (*Initiator, wire.Initiation, error) {
		i.Zero()
		return nil, wire.Initiation{}, fmt.Errorf("initiate handshake: %w", err)
	}
	s := &i.sym
	copy(m.Noise[:32], epub[:]) // -> e
	s.mixHash(epub[:])
	s.mixKey(epub[:])
	es, err := dh(&i.e, &peer) // es
	if err != nil {
		return fail(err)
	}
	k := s.mixKey(es[:])
	clear(es[:])
	s.encryptAndHash(&k, m.Noise[32:32], p.Local.Public[:]) // s
	ss, err := dh(&i.local, &peer)                          // ss
	if err != nil {
		return fail(err)
	}
	k = s.mixKey(ss[:])
	clear(ss[:])
	ts := NewTimestamp(now)
	s.encryptAndHash(&k, m.Noise[80:80], ts[:])
	m.Sender = sender
	return i, m, nil
}

// Zero wipes the attempt's secrets; the Initiator is unusable after.
func (i *Initiator) Zero() {
	i.sym.zero()
	clear(i.e[:])
	clear(i.local[:])
	clear(i.psk[:])
	i.done = true
}

// Finish consumes the responder's response and returns the session keys,
// then wipes the attempt. On error the Initiator is unchanged and may
// consume another response.
func (i *Initiator) Finish(r *wire.Response) (Keys, error) {
	var k Keys
	if i.done {
		return k, fmt.Errorf("finish handshake: %w", ErrState)
	}
	if r.Receiver != i.Sender {
		return k, fmt.Errorf("finish handshake: response for index %d, want %d: %w", r.Receiver, i.Sender, ErrState)
	}
	s := i.sym // a copy: committed only on success
	defer s.zero()
	var re [32]byte
	copy(re[:], r.Noise[:32]) // <- e
	s.mixHash(re[:])
	s.mixKey(re[:])
	ee, err := dh(&i.e, &re) // ee
	if err != nil {
		return k, fmt.Errorf("finish handshake: %w", ErrDecrypt)
	}
	key := s.mixKey(ee[:])
	clear(ee[:])
	clear(key[:])
	se, err := dh(&i.local, &re) // se
	if err != nil {
		return k, fmt.Errorf("finish handshake: %w", ErrDecrypt)
	}
	key = s.mixKey(se[:])
	clear(se[:])
	clear(key[:])
	key = s.mixKeyAndHash(i.psk[:]) // psk
	var buf [16]byte
	payload, err := s.decryptAndHash(&key, buf[:0], r.Noise[32:wire.ResponseNoiseSize])
	if err != nil {
		return k, fmt.Errorf("finish handshake: %w", ErrDecrypt)
	}
	if len(payload) != 0 {
		return k, fmt.Errorf("finish handshake: unexpected payload: %w", ErrDecrypt)
	}
	k.Send, k.Recv = s.split()
	i.Zero()
	return k, nil
}

// Responder is the responder's side of one handshake, after the initiation
// was consumed.
type Responder struct {
	sym        symmetric
	re         [32]byte // the initiator's ephemeral public key
	psk        [32]byte // the PSK the initiator holds
	rnd        io.Reader
	done       bool
	PeerStatic [32]byte  // the initiator's static public key
	Timestamp  Timestamp // the initiation's timestamp
	Sender     uint32    // the initiation's sender index
	// PreviousPSK reports that the initiator used Params.PrevPSK.
	PreviousPSK bool
}

// Consume decrypts an initiation. known, if not nil, is asked about the
// initiator's static key as soon as it is decrypted, before the second
// Diffie-Hellman: if it returns false, Consume fails with ErrUnknownKey.
// The initiation must be sealed for p.PSK, or for p.PrevPSK while now is
// before p.PrevUntil (tried only when p.PSK does not fit; it costs no
// Diffie-Hellman). The caller must then check that Timestamp is newer than
// that peer's last, before calling Respond.
func Consume(p *Params, m *wire.Initiation, now time.Time, known func(static [32]byte) bool) (*Responder, error) {
	r := &Responder{rnd: p.random(), Sender: m.Sender}
	copy(r.re[:], m.Noise[:32])
	es, err := dh(&p.Local.Private, &r.re)
	if err != nil {
		return nil, fmt.Errorf("consume initiation: %w", ErrDecrypt)
	}
	defer clear(es[:])
	// open runs "e, es, s" for one PSK's prologue tag.
	open := func(psk *[32]byte) bool {
		r.sym = start(p.Prologue, psk, &p.Local.Public)
		s := &r.sym
		s.mixHash(r.re[:])
		s.mixKey(r.re[:])
		k := s.mixKey(es[:])
		out, err := s.decryptAndHash(&k, r.PeerStatic[:0], m.Noise[32:80])
		if err != nil || len(out) != 32 {
			s.zero()
			return false
		}
		r.psk = *psk
		return true
	}
	switch {
	case open(&p.PSK):
	case !p.PrevUntil.IsZero() && now.Before(p.PrevUntil) && open(&p.PrevPSK):
		r.PreviousPSK = true
	default:
		return nil, fmt.Errorf("consume initiation: %w", ErrDecrypt)
	}
	if known != nil && !known(r.PeerStatic) {
		r.Zero()
		return nil, fmt.Errorf("consume initiation: %w", ErrUnknownKey)
	}
	ss, err := dh(&p.Local.Private, &r.PeerStatic) // ss
	if err != nil {
		r.Zero()
		return nil, fmt.Errorf("consume initiation: %w", ErrDecrypt)
	}
	k := r.sym.mixKey(ss[:])
	clear(ss[:])
	var buf [wire.TimestampSize]byte
	payload, err := r.sym.decryptAndHash(&k, buf[:0], m.Noise[80:wire.InitiationNoiseSize])
	if err != nil || len(payload) != wire.TimestampSize {
		r.Zero()
		return nil, fmt.Errorf("consume initiation: %w", ErrDecrypt)
	}
	copy(r.Timestamp[:], payload)
	return r, nil
}

// Zero wipes the handshake's secrets; the Responder is unusable after.
func (r *Responder) Zero() {
	r.sym.zero()
	clear(r.psk[:])
	r.done = true
}

// Respond writes the response (MACs zero) with the responder's own index
// sender and returns it with the session keys, then wipes the handshake.
// A Responder responds once.
func (r *Responder) Respond(sender uint32) (wire.Response, Keys, error) {
	var m wire.Response
	var k Keys
	if r.done {
		return m, k, fmt.Errorf("respond to handshake: %w", ErrState)
	}
	defer r.Zero()
	e, epub, err := newEphemeral(r.rnd)
	if err != nil {
		return m, k, fmt.Errorf("respond to handshake: %w", err)
	}
	defer clear(e[:])
	s := &r.sym
	copy(m.Noise[:32], epub[:]) // <- e
	s.mixHash(epub[:])
	s.mixKey(epub[:])
	ee, err := dh(&e, &r.re) // ee
	if err != nil {
		return m, k, fmt.Errorf("respond to handshake: %w", ErrDecrypt)
	}
	key := s.mixKey(ee[:])
	clear(ee[:])
	clear(key[:])
	se, err := dh(&e, &r.PeerStatic) // se
	if err != nil {
		return m, k, fmt.Errorf("respond to handshake: %w", ErrDecrypt)
	}
	key = s.mixKey(se[:])
	clear(se[:])
	clear(key[:])
	key = s.mixKeyAndHash(r.psk[:]) // psk
	s.encryptAndHash(&key, m.Noise[32:32], nil)
	m.Sender = sender
	m.Receiver = r.Sender
	k.Recv, k.Send = s.split()
	return m, k, nil
}
