package nodeauth

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Join proof
//
// A join proves that the joiner holds the private half of the public key it
// registers: api.JoinRequest carries Timestamp (unix milliseconds) and
// Signature, the ed25519 signature by the node key over, each followed by
// "\n":
//
//	"tunnelmesh-join-v1", token ID, registry pin, name (as sent),
//	public key (OpenSSH "ssh-ed25519 AAAA..."), timestamp
//
// The token ID and pin bind the proof to one token of one registry, the
// timestamp to a MaxSkew window, and the registry refuses a signature it
// has seen before (the replay cache of node requests).
const joinContext = "tunnelmesh-join-v1"

// ErrJoinUnsigned is a join request without a proof of the node key.
var ErrJoinUnsigned = errors.New("join request is not signed by the node key")

// JoinPayload returns the bytes a join signature covers.
func JoinPayload(tokenID, pin, name string, key nodekey.PublicKey, timestamp int64) []byte {
	var b bytes.Buffer
	for _, s := range []string{joinContext, tokenID, pin, name, key.String(), strconv.FormatInt(timestamp, 10)} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// SignJoin sets req's PublicKey to key's and signs the request with it at
// now. req.Token and req.Name must be final.
func SignJoin(req *api.JoinRequest, key nodekey.PrivateKey, now time.Time) error {
	if key.IsZero() {
		return fmt.Errorf("sign join: no node key")
	}
	tok, err := jointoken.Parse(req.Token)
	if err != nil {
		return fmt.Errorf("sign join: %w", err)
	}
	req.PublicKey = key.Public()
	req.Timestamp = now.UnixMilli()
	req.Signature = key.Sign(JoinPayload(tok.ID, tok.Pin, req.Name, req.PublicKey, req.Timestamp))
	return nil
}

// VerifyJoin checks req's proof of its node key for a token with the given
// ID on the registry with the given pin: signature present, timestamp
// within MaxSkew of now, signature valid and, when cache is not nil, not
// seen before (it is recorded only when everything else passed).
func VerifyJoin(req *api.JoinRequest, tokenID, pin string, now time.Time, cache Replays) error {
	if len(req.Signature) == 0 {
		return ErrJoinUnsigned
	}
	if len(req.Signature) != 64 {
		return fmt.Errorf("%w: signature is %d bytes, want 64", ErrBadSig, len(req.Signature))
	}
	if d := now.Sub(time.UnixMilli(req.Timestamp)); d > MaxSkew || d < -MaxSkew {
		return ErrStale
	}
	if !req.PublicKey.Verify(JoinPayload(tokenID, pin, req.Name, req.PublicKey, req.Timestamp), req.Signature) {
		return ErrBadSig
	}
	if cache != nil && !cache.Add(req.Signature, now) {
		return ErrReplayed
	}
	return nil
}
