package nodeauth

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Requests from a node to a service run by another mesh member (the
// storage service issuing S3 credentials, say) are signed by the node key
// alone: the registry credential's secret is never sent to anyone but the
// registry. They carry:
//
//	Authorization:          TunnelMesh-Node-Key <node id>
//	X-Tunnelmesh-Date:      <unix time in milliseconds>
//	X-Tunnelmesh-Nonce:     base64url(16 random bytes)
//	X-Tunnelmesh-Signature: base64url(ed25519 signature by the node key)
//
// The signature covers the same fields as a registry request's (see the
// package doc) under the context "tunnelmesh-peer-request-v1", so a
// registry request cannot be replayed to a service nor the reverse. The
// service looks the node ID up in its current netmap and verifies with the
// public key found there (VerifyPeer).

// PeerScheme is the Authorization scheme of node-to-service requests.
const PeerScheme = "TunnelMesh-Node-Key"

const peerContext = "tunnelmesh-peer-request-v1"

// SignPeer adds the node-to-service headers to r for the given body (the
// exact bytes sent), signed by key as node nodeID.
func SignPeer(r *http.Request, body []byte, nodeID string, key nodekey.PrivateKey, now time.Time) {
	date, nonce := dateNonce(now)
	sig := key.Sign(payloadWith(peerContext, r.Method, r.URL.RequestURI(), date, nonce, body))
	r.Header.Set("Authorization", PeerScheme+" "+nodeID)
	r.Header.Set(HeaderDate, date)
	r.Header.Set(HeaderNonce, nonce)
	r.Header.Set(HeaderSignature, b64.EncodeToString(sig))
}

// PeerRequest is a parsed, not yet verified, node-to-service request.
type PeerRequest struct {
	NodeID  string
	Date    time.Time
	sig     []byte
	payload []byte
}

// ParsePeer reads the node-to-service headers of r, whose body has been
// read into body.
func ParsePeer(r *http.Request, body []byte) (*PeerRequest, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, ErrMissing
	}
	scheme, id, ok := strings.Cut(auth, " ")
	id = strings.TrimSpace(id)
	if !ok || scheme != PeerScheme || id == "" || len(id) > 128 {
		return nil, fmt.Errorf("%w: want %s <node id>", ErrMalformed, PeerScheme)
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
	return &PeerRequest{
		NodeID:  id,
		Date:    time.UnixMilli(ms),
		sig:     sig,
		payload: payloadWith(peerContext, r.Method, r.URL.RequestURI(), dateStr, nonce, body),
	}, nil
}

// Verify checks the request against the node's public key (from the
// verifier's netmap), the clock and the replay cache. It records the
// signature in the cache only when everything else has passed.
func (q *PeerRequest) Verify(key nodekey.PublicKey, now time.Time, cache Replays) error {
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
