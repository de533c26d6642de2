package handshake

import (
	"crypto/hmac"
	"hash"
	"io"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// The Noise primitives of IKpsk2_25519_ChaChaPoly_BLAKE2s, written out as in
// wireguard-go's noise-protocol.go rather than driven through a generic
// handshake state: every step works on copies that are committed only when
// the message checked out (a failed message changes nothing), the
// responder can refuse an unknown static key before the ss Diffie-Hellman,
// and the es result is reused when a second PSK is tried.

// initialHash is h (and ck) after InitializeSymmetric(ProtocolName): the
// name is longer than 32 bytes, so it is hashed.
var initialHash = blake2s.Sum256([]byte(wire.ProtocolName))

// dh is X25519 with a peer's public key; a low-order point is an error.
// Tests wrap it to count the Diffie-Hellman operations.
var dh = func(priv, pub *[32]byte) ([32]byte, error) {
	var out [32]byte
	r, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		return out, err
	}
	copy(out[:], r)
	clear(r)
	return out, nil
}

// newEphemeral reads an ephemeral private key from rnd and returns it with
// its public key.
func newEphemeral(rnd io.Reader) (priv, pub [32]byte, err error) {
	if _, err = io.ReadFull(rnd, priv[:]); err != nil {
		return priv, pub, err
	}
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		clear(priv[:])
		return priv, pub, err
	}
	copy(pub[:], p)
	return priv, pub, nil
}

// symmetric is Noise's SymmetricState minus the cipher key: in this pattern
// every key MixKey yields encrypts at most one message, with nonce 0, so
// it is returned to the caller instead of kept.
type symmetric struct {
	ck [32]byte // chaining key
	h  [32]byte // handshake hash
}

func (s *symmetric) zero() {
	clear(s.ck[:])
	clear(s.h[:])
}

func (s *symmetric) mixHash(data []byte) {
	h, _ := blake2s.New256(nil)
	h.Write(s.h[:])
	h.Write(data)
	h.Sum(s.h[:0])
}

func newHMAC(key []byte) hash.Hash {
	return hmac.New(func() hash.Hash { h, _ := blake2s.New256(nil); return h }, key)
}

// hkdf is Noise's HKDF with HMAC-BLAKE2s, writing len(out) outputs.
func hkdf(ck *[32]byte, ikm []byte, out ...*[32]byte) {
	m := newHMAC(ck[:])
	m.Write(ikm)
	var prk [32]byte
	m.Sum(prk[:0])
	m = newHMAC(prk[:])
	var prev []byte
	for i, o := range out {
		m.Reset()
		m.Write(prev)
		m.Write([]byte{byte(i + 1)})
		m.Sum(o[:0])
		prev = o[:]
	}
	clear(prk[:])
}

// mixKey returns the cipher key of MixKey(ikm).
func (s *symmetric) mixKey(ikm []byte) (k [32]byte) {
	hkdf(&s.ck, ikm, &s.ck, &k)
	return k
}

// mixKeyAndHash returns the cipher key of MixKeyAndHash(ikm).
func (s *symmetric) mixKeyAndHash(ikm []byte) (k [32]byte) {
	var th [32]byte
	hkdf(&s.ck, ikm, &s.ck, &th, &k)
	s.mixHash(th[:])
	return k
}

var zeroNonce [chacha20poly1305.NonceSize]byte

// encryptAndHash seals plaintext under k (nonce 0) into dst, mixes the
// ciphertext into h and wipes k.
func (s *symmetric) encryptAndHash(k *[32]byte, dst, plaintext []byte) []byte {
	aead, _ := chacha20poly1305.New(k[:])
	clear(k[:])
	out := aead.Seal(dst, zeroNonce[:], plaintext, s.h[:])
	s.mixHash(out[len(dst):])
	return out
}

// decryptAndHash opens ciphertext under k (nonce 0) into dst, mixes the
// ciphertext into h and wipes k.
func (s *symmetric) decryptAndHash(k *[32]byte, dst, ciphertext []byte) ([]byte, error) {
	aead, _ := chacha20poly1305.New(k[:])
	clear(k[:])
	out, err := aead.Open(dst, zeroNonce[:], ciphertext, s.h[:])
	if err != nil {
		return nil, err
	}
	s.mixHash(ciphertext)
	return out, nil
}

// split returns Split()'s two transport keys.
func (s *symmetric) split() (k1, k2 [32]byte) {
	hkdf(&s.ck, nil, &k1, &k2)
	return k1, k2
}

// start returns the symmetric state after the prologue and the responder's
// pre-message static key. The prologue is the caller's (the mesh and
// protocol version) followed by a tag of the PSK: the PSK itself enters the
// key schedule only in the second message (psk2), and the tag lets a
// responder that accepts two PSKs (during a rotation) tell from the first
// message which one the initiator holds, answering with that one.
func start(prologue []byte, psk *[32]byte, responderStatic *[32]byte) symmetric {
	s := symmetric{ck: initialHash, h: initialHash}
	tag := pskTag(psk)
	h, _ := blake2s.New256(nil)
	h.Write(s.h[:])
	h.Write(prologue)
	h.Write(tag[:])
	h.Sum(s.h[:0])
	s.mixHash(responderStatic[:])
	return s
}

// pskTag is keyed BLAKE2s of a fixed label under the PSK: it names the PSK
// without revealing it.
func pskTag(psk *[32]byte) (tag [32]byte) {
	h, _ := blake2s.New256(psk[:])
	h.Write([]byte("tunnelmesh psk tag"))
	h.Sum(tag[:0])
	return tag
}
