package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/creds"
)

// derivationContext separates these keys from any other use of the secret.
const derivationContext = "tunnelmesh-storage cluster key v1"

// Deriver computes the cluster's S3 keys. It implements creds.Deriver.
type Deriver struct {
	secret []byte
	epoch  uint64
}

// NewDeriver returns a Deriver for secret and epoch. The secret is kept,
// not copied: the caller must not change it.
func NewDeriver(secret []byte, epoch uint64) *Deriver {
	return &Deriver{secret: secret, epoch: epoch}
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Admin returns the cluster's administrative key (the supervisors' own,
// used to create buckets), the same on every node.
func (d *Deriver) Admin() creds.Key {
	return d.key("TMADMIN", "admin", nil)
}

// Node returns the key of node id with public key pub.
func (d *Deriver) Node(id string, pub nodekey.PublicKey) creds.Key {
	return d.key("TM", "node", append(append([]byte(id), 0), pub[:]...))
}

// key derives an access key (prefix, then base32, 20 characters) and a
// secret (40 base64url characters) from the secret, the epoch, the role and
// the subject, each from its own HMAC so the public access key says nothing
// about the secret key.
func (d *Deriver) key(prefix, role string, subject []byte) creds.Key {
	sum := func(part string) []byte {
		m := hmac.New(sha256.New, d.secret)
		var e [8]byte
		binary.BigEndian.PutUint64(e[:], d.epoch)
		m.Write([]byte(derivationContext))
		m.Write([]byte{0})
		m.Write(e[:])
		m.Write([]byte(role + "\x00" + part + "\x00"))
		m.Write(subject)
		return m.Sum(nil)
	}
	ak := prefix + b32.EncodeToString(sum("access")[:15])
	return creds.Key{AccessKey: ak[:20], Secret: base64.RawURLEncoding.EncodeToString(sum("secret")[:30])}
}
