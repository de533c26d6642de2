// Package nodeauth authenticates a node's calls to the registry.
//
// At join the registry issues a credential "<node id>.<secret>"; it stores
// only the SHA-256 of the secret. Every node call then carries three headers:
//
//	Authorization:          TunnelMesh-Node <credential>
//	X-Tunnelmesh-Date:      <unix time in milliseconds>
//	X-Tunnelmesh-Nonce:     base64url(16 random bytes)
//	X-Tunnelmesh-Signature: base64url(ed25519 signature by the node key)
//
// The signature covers, each followed by "\n":
//
//	"tunnelmesh-node-request-v1", method, request URI (path and query),
//	date, nonce, base64url(SHA-256(body))
//
// The nonce makes two identical requests sent in the same millisecond (a
// retried heartbeat, say) distinct, so only a true copy is a replay.
//
// The registry accepts a call when the secret matches (constant time), the
// signature verifies under the node's registered key, the date is within
// MaxSkew of its clock, and the signature has not been seen before (a replay
// cache holds signatures for twice MaxSkew). A stolen credential is useless
// without the key; a captured request cannot be replayed.
//
// Joins carry their own proof of the node key (SignJoin, VerifyJoin in
// join.go), checked against the same replay cache.
package nodeauth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Header names and the Authorization scheme.
const (
	HeaderDate      = "X-Tunnelmesh-Date"
	HeaderNonce     = "X-Tunnelmesh-Nonce"
	HeaderSignature = "X-Tunnelmesh-Signature"
	Scheme          = "TunnelMesh-Node"
	context         = "tunnelmesh-node-request-v1"
)

// MaxSkew is the largest difference between a request's date and the
// registry's clock that is accepted.
const MaxSkew = 2 * time.Minute

// Errors from Parse and Verify.
var (
	ErrMissing   = errors.New("missing node credentials")
	ErrMalformed = errors.New("malformed node credentials")
	ErrStale     = errors.New("request date outside the accepted window")
	ErrBadSecret = errors.New("node credential does not match")
	ErrBadSig    = errors.New("request signature does not verify")
	ErrReplayed  = errors.New("request replayed")
)

var b64 = base64.RawURLEncoding

// Credential is a node's credential.
type Credential struct {
	NodeID string
	Secret string
}

// ParseCredential parses "<node id>.<secret>".
func ParseCredential(s string) (Credential, error) {
	id, secret, ok := strings.Cut(s, ".")
	if !ok || id == "" || secret == "" || len(s) > 256 {
		return Credential{}, ErrMalformed
	}
	return Credential{NodeID: id, Secret: secret}, nil
}

// String returns the credential's text form.
func (c Credential) String() string { return c.NodeID + "." + c.Secret }

// SecretHash returns what the registry stores for the secret.
func (c Credential) SecretHash() [32]byte { return sha256.Sum256([]byte(c.Secret)) }

// SecretMatches reports in constant time whether c's secret hashes to hash.
func (c Credential) SecretMatches(hash []byte) bool {
	h := c.SecretHash()
	return subtle.ConstantTimeCompare(h[:], hash) == 1
}

func payload(method, uri, date, nonce string, body []byte) []byte {
	return payloadWith(context, method, uri, date, nonce, body)
}

func payloadWith(ctx, method, uri, date, nonce string, body []byte) []byte {
	sum := sha256.Sum256(body)
	var b bytes.Buffer
	for _, s := range []string{ctx, method, uri, date, nonce, b64.EncodeToString(sum[:])} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Sign adds the node headers to r for the given body (which must be the
// exact bytes sent).
func Sign(r *http.Request, body []byte, cred Credential, key nodekey.PrivateKey, now time.Time) {
	date, nonce := dateNonce(now)
	sig := key.Sign(payload(r.Method, r.URL.RequestURI(), date, nonce, body))
	r.Header.Set("Authorization", Scheme+" "+cred.String())
	r.Header.Set(HeaderDate, date)
	r.Header.Set(HeaderNonce, nonce)
	r.Header.Set(HeaderSignature, b64.EncodeToString(sig))
}

func dateNonce(now time.Time) (date, nonce string) {
	var n [16]byte
	rand.Read(n[:])
	return strconv.FormatInt(now.UnixMilli(), 10), b64.EncodeToString(n[:])
}

// Request is a parsed, not yet verified, node request.
type Request struct {
	Credential Credential
	Date       time.Time
	sig        []byte
	payload    []byte
}

// Parse reads the node headers of r, whose body has been read into body.
func Parse(r *http.Request, body []byte) (*Request, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, ErrMissing
	}
	scheme, rest, ok := strings.Cut(auth, " ")
	if !ok || scheme != Scheme {
		return nil, fmt.Errorf("%w: want %s scheme", ErrMalformed, Scheme)
	}
	cred, err := ParseCredential(strings.TrimSpace(rest))
	if err != nil {
		return nil, err
	}
	dateStr := r.Header.Get(HeaderDate)
	ms, err := strconv.ParseInt(dateStr, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: bad %s", ErrMalformed, HeaderDate)
	}
	nonce := r.Header.Get(HeaderNonce)
	if n, err := b64.DecodeString(nonce); err != nil || len(n) != 16 {
		return nil, fmt.Errorf("%w: bad %s", ErrMalformed, HeaderNonce)
	}
	sig, err := b64.DecodeString(r.Header.Get(HeaderSignature))
	if err != nil || len(sig) != 64 {
		return nil, fmt.Errorf("%w: bad %s", ErrMalformed, HeaderSignature)
	}
	return &Request{
		Credential: cred,
		Date:       time.UnixMilli(ms),
		sig:        sig,
		payload:    payload(r.Method, r.URL.RequestURI(), dateStr, nonce, body),
	}, nil
}

// Verify checks the request against the node's stored secret hash and key,
// the clock and the replay cache. It records the signature in the cache only
// when everything else has passed.
func (q *Request) Verify(secretHash []byte, key nodekey.PublicKey, now time.Time, cache Replays) error {
	if !q.Credential.SecretMatches(secretHash) {
		return ErrBadSecret
	}
	if d := now.Sub(q.Date); d > MaxSkew || d < -MaxSkew {
		return ErrStale
	}
	if !key.Verify(q.payload, q.sig) {
		return ErrBadSig
	}
	if cache != nil && !cache.Add(q.sig, now) {
		return ErrReplayed
	}
	return nil
}

// Replays remembers the signatures of accepted requests. Add records sig
// and reports whether it was new. ReplayCache is the in-memory one; the
// registry keeps a persisted one so that a restart does not forget.
type Replays interface {
	Add(sig []byte, now time.Time) bool
}

// ReplayCache remembers signatures for 2*MaxSkew. Safe for concurrent use.
type ReplayCache struct {
	mu   sync.Mutex // guards the fields below
	seen map[[32]byte]time.Time
	last time.Time // last sweep
}

// NewReplayCache returns an empty cache.
func NewReplayCache() *ReplayCache {
	return &ReplayCache{seen: make(map[[32]byte]time.Time)}
}

// Add records sig and reports whether it was new.
func (c *ReplayCache) Add(sig []byte, now time.Time) bool {
	k := sha256.Sum256(sig)
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.last) > MaxSkew {
		for s, t := range c.seen {
			if now.Sub(t) > 2*MaxSkew {
				delete(c.seen, s)
			}
		}
		c.last = now
	}
	if _, dup := c.seen[k]; dup {
		return false
	}
	c.seen[k] = now
	return true
}
