package relaywire

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"
	"time"

	"filippo.io/edwards25519"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Keys of small order sign without a private key: with R = [s]B, the
// signature (R, s) verifies whenever [k]A is the identity, which a few
// values of s hit. Verify refuses every such key, and the all-zero key.
func TestVerifyRefusesSmallOrderKeys(t *testing.T) {
	chal, err := Challenge{Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), RelayID: "relay-x"}.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000", // identity
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
		"0000000000000000000000000000000000000000000000000000000000000000", // order 4, all zero
		"0000000000000000000000000000000000000000000000000000000000000080", // order 4
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // identity, y = p + 1
	} {
		var key nodekey.PublicKey
		b, _ := hex.DecodeString(h)
		copy(key[:], b)
		msg := signedMessage(chal, key)
		forged := false
		for i := 1; i <= 4096 && !forged; i++ {
			var sb [32]byte
			sb[0], sb[1] = byte(i), byte(i>>8)
			s, err := edwards25519.NewScalar().SetCanonicalBytes(sb[:])
			if err != nil {
				t.Fatal(err)
			}
			a := Auth{Key: key}
			copy(a.Sig[:32], new(edwards25519.Point).ScalarBaseMult(s).Bytes())
			copy(a.Sig[32:], sb[:])
			if !ed25519.Verify(ed25519.PublicKey(key[:]), msg, a.Sig[:]) {
				continue
			}
			forged = true
			if a.Verify(chal) {
				t.Errorf("Verify accepts a signature made without a private key for small-order key %s", h)
			}
		}
		if !forged {
			t.Errorf("no forged signature found for %s", h)
		}
	}
}
