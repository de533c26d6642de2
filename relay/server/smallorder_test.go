package server_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"

	"filippo.io/edwards25519"
	"github.com/coder/websocket"
	"github.com/tunnelmesh/tunnelmesh/relay/internal/relaytest"
	"github.com/tunnelmesh/tunnelmesh/relay/server"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/relaywire"
)

// smallOrderKeys are the encodings of the eight points of small order on
// edwards25519 (the identity, order 2, 4 and 8, both signs), plus a
// non-canonical encoding of the identity (y = p + 1) and the all-zero key.
var smallOrderKeys = []string{
	"0100000000000000000000000000000000000000000000000000000000000000", // identity
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
	"0000000000000000000000000000000000000000000000000000000000000000", // order 4, all zero
	"0000000000000000000000000000000000000000000000000000000000000080", // order 4
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // identity, y = p + 1
}

// authContext is relaywire's signing context (shared/relaywire: the signed
// message is context || challenge || key).
const authContext = "tunnelmesh-relay-auth-v1\x00"

// forgeAuth answers chal as key without any private key: for a key of
// small order A, [k]A cycles through at most eight points, so with R = [s]B
// the equation [s]B = R + [k]A holds whenever [k]A is the identity, which
// a few values of s hit. ok is false when no s up to 4096 did.
func forgeAuth(t *testing.T, key nodekey.PublicKey, chal []byte) (relaywire.Auth, bool) {
	t.Helper()
	msg := append(append([]byte(authContext), chal...), key[:]...)
	for i := 1; i <= 4096; i++ {
		var sb [32]byte
		sb[0], sb[1] = byte(i), byte(i>>8)
		s, err := edwards25519.NewScalar().SetCanonicalBytes(sb[:])
		if err != nil {
			t.Fatal(err)
		}
		r := new(edwards25519.Point).ScalarBaseMult(s)
		a := relaywire.Auth{Key: key}
		copy(a.Sig[:32], r.Bytes())
		copy(a.Sig[32:], sb[:])
		if ed25519.Verify(ed25519.PublicKey(key[:]), msg, a.Sig[:]) {
			return a, true
		}
	}
	return relaywire.Auth{}, false
}

// A standalone relay without an allow list admits every key that signs its
// challenge; keys of small order sign without a private key, so anyone
// could take such a key's place and receive the frames addressed to it.
// The relay refuses them.
func TestHandshakeRefusesSmallOrderKeys(t *testing.T) {
	r := relaytest.Start(t, server.Config{ID: "relay-open"}, 0)
	for _, h := range smallOrderKeys {
		t.Run(h[:8], func(t *testing.T) {
			var key nodekey.PublicKey
			b, _ := hex.DecodeString(h)
			copy(key[:], b)
			ws, chal := rawDial(t, r)
			auth, ok := forgeAuth(t, key, chal)
			if !ok {
				t.Fatalf("no forged signature for %s", h)
			}
			msg, err := answer(t, ws, auth.Append(nil))
			if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
				t.Fatalf("forged auth as small-order key %s: reply %x, %v; want close with status 1008", h, msg, err)
			}
			if r.Server.Connected(key) {
				t.Fatalf("small-order key %s is connected", h)
			}
		})
	}
	if got := r.Metric("handshakes_total", "result=bad_auth"); got != float64(len(smallOrderKeys)) {
		t.Errorf("handshakes_total{bad_auth} = %v, want %d", got, len(smallOrderKeys))
	}
}
