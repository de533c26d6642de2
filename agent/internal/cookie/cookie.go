// Package cookie computes and checks the MAC1 and MAC2 fields of handshake
// messages and the cookie replies a busy responder sends, as WireGuard does
// (whitepaper section 5.4.7). MAC1 is keyed by the receiver's static public
// key, so a responder can drop garbage before any Diffie-Hellman; MAC2 is
// keyed by a cookie bound to the sender's IP and port, which a responder
// under load demands before it spends a DH on a message.
//
// Message layouts are in package wire; mac1 is always the 32nd to 17th last
// byte of a message and mac2 the last 16.
package cookie

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

const (
	labelMAC1   = "mac1----"
	labelCookie = "cookie--"
)

// ErrBadReply is returned for a cookie reply that does not decrypt or answers
// no message this side sent.
var ErrBadReply = errors.New("cookie reply invalid")

func hashKey(label string, pub [32]byte) (k [32]byte) {
	h, _ := blake2s.New256(nil)
	h.Write([]byte(label))
	h.Write(pub[:])
	h.Sum(k[:0])
	return k
}

func mac(out []byte, key []byte, parts ...[]byte) {
	h, err := blake2s.New128(key)
	if err != nil {
		panic(err) // key lengths are fixed by this package
	}
	for _, p := range parts {
		h.Write(p)
	}
	h.Sum(out[:0])
}

// AddrBytes is the source form (for CheckMAC2 and CreateReply) of a UDP
// source address: the IPv6 (or IPv4-mapped) address and the port.
func AddrBytes(src netip.AddrPort) []byte {
	a := src.Addr().As16()
	b := make([]byte, 18)
	copy(b, a[:])
	b[16] = byte(src.Port() >> 8)
	b[17] = byte(src.Port())
	return b
}

func split(msg []byte) (body1, mac1, body2, mac2 []byte, ok bool) {
	n := len(msg)
	if n < 2*wire.MACSize {
		return nil, nil, nil, nil, false
	}
	return msg[:n-32], msg[n-32 : n-16], msg[:n-16], msg[n-16:], true
}

// Checker checks MACs on messages sent to this node and makes cookie
// replies. It is safe for concurrent use.
type Checker struct {
	mac1Key   [32]byte
	cookieKey [32]byte

	mu        sync.Mutex // guards the fields below
	secret    [32]byte
	secretSet time.Time
}

// NewChecker returns a Checker for the local static X25519 public key.
func NewChecker(localPub [32]byte) *Checker {
	return &Checker{mac1Key: hashKey(labelMAC1, localPub), cookieKey: hashKey(labelCookie, localPub)}
}

// CheckMAC1 reports whether msg carries a valid mac1.
func (c *Checker) CheckMAC1(msg []byte) bool {
	body, m1, _, _, ok := split(msg)
	if !ok {
		return false
	}
	var want [wire.MACSize]byte
	mac(want[:], c.mac1Key[:], body)
	return subtle.ConstantTimeCompare(want[:], m1) == 1
}

// CheckMAC2 reports whether msg carries a valid mac2 for a cookie this node
// gave src within the last CookieRefreshTime. src names where msg came
// from: AddrBytes of a UDP source, or the authenticated identity behind an
// endpoint of another transport (as wireguard-go uses the endpoint's
// DstToBytes).
func (c *Checker) CheckMAC2(msg []byte, src []byte, now time.Time) bool {
	_, _, body, m2, ok := split(msg)
	if !ok {
		return false
	}
	c.mu.Lock()
	if c.secretSet.IsZero() || now.Sub(c.secretSet) > wire.CookieRefreshTime {
		c.mu.Unlock()
		return false
	}
	var cookie [wire.CookieSize]byte
	mac(cookie[:], c.secret[:], src)
	c.mu.Unlock()
	var want [wire.MACSize]byte
	mac(want[:], cookie[:], body)
	return subtle.ConstantTimeCompare(want[:], m2) == 1
}

// CreateReply makes the cookie reply to msg (an initiation or response whose
// sender index is sender) received from src (see CheckMAC2).
func (c *Checker) CreateReply(msg []byte, sender uint32, src []byte, now time.Time) (wire.CookieReply, error) {
	var r wire.CookieReply
	_, m1, _, _, ok := split(msg)
	if !ok {
		return r, fmt.Errorf("create cookie reply: %w", wire.ErrTruncated)
	}
	c.mu.Lock()
	if c.secretSet.IsZero() || now.Sub(c.secretSet) > wire.CookieRefreshTime {
		if _, err := rand.Read(c.secret[:]); err != nil {
			c.mu.Unlock()
			return r, fmt.Errorf("create cookie reply: %w", err)
		}
		c.secretSet = now
	}
	var cookie [wire.CookieSize]byte
	mac(cookie[:], c.secret[:], src)
	c.mu.Unlock()

	r.Receiver = sender
	if _, err := rand.Read(r.Nonce[:]); err != nil {
		return r, fmt.Errorf("create cookie reply: %w", err)
	}
	aead, err := chacha20poly1305.NewX(c.cookieKey[:])
	if err != nil {
		return r, fmt.Errorf("create cookie reply: %w", err)
	}
	aead.Seal(r.Cookie[:0], r.Nonce[:], cookie[:], m1)
	return r, nil
}

// Generator adds MACs to messages this node sends to one peer and consumes
// that peer's cookie replies. It is safe for concurrent use.
type Generator struct {
	mac1Key   [32]byte
	cookieKey [32]byte

	mu        sync.Mutex // guards the fields below
	cookie    [wire.CookieSize]byte
	cookieSet time.Time
	lastMAC1  [wire.MACSize]byte
	haveMAC1  bool
}

// NewGenerator returns a Generator for the peer's static X25519 public key.
func NewGenerator(peerPub [32]byte) *Generator {
	return &Generator{mac1Key: hashKey(labelMAC1, peerPub), cookieKey: hashKey(labelCookie, peerPub)}
}

// AddMACs fills in mac1 and, when a fresh cookie is held, mac2 of msg.
func (g *Generator) AddMACs(msg []byte, now time.Time) {
	body1, m1, body2, m2, ok := split(msg)
	if !ok {
		return
	}
	mac(m1, g.mac1Key[:], body1)
	g.mu.Lock()
	defer g.mu.Unlock()
	copy(g.lastMAC1[:], m1)
	g.haveMAC1 = true
	if g.cookieSet.IsZero() || now.Sub(g.cookieSet) > wire.CookieRefreshTime-wire.RekeyTimeout {
		clear(m2)
		return
	}
	mac(m2, g.cookie[:], body2)
}

// ConsumeReply decrypts and stores the cookie in r, which must answer the
// last message this Generator put MACs on.
func (g *Generator) ConsumeReply(r *wire.CookieReply, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.haveMAC1 {
		return fmt.Errorf("consume cookie reply: %w", ErrBadReply)
	}
	aead, err := chacha20poly1305.NewX(g.cookieKey[:])
	if err != nil {
		return fmt.Errorf("consume cookie reply: %w", err)
	}
	var cookie [wire.CookieSize]byte
	if _, err := aead.Open(cookie[:0], r.Nonce[:], r.Cookie[:], g.lastMAC1[:]); err != nil {
		return fmt.Errorf("consume cookie reply: %w", ErrBadReply)
	}
	g.cookie = cookie
	g.cookieSet = now
	g.haveMAC1 = false
	return nil
}
