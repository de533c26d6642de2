// Package nodekey holds a node's identity: an ed25519 key in OpenSSH format,
// and the X25519 key pair derived from it that the Noise handshake uses.
//
// One key serves both the SSH transport (as an ed25519 SSH key) and the
// tunnels (as an X25519 static key, by the standard birational map from the
// Edwards curve to the Montgomery curve, as libsodium's
// crypto_sign_ed25519_pk_to_curve25519 and crypto_sign_ed25519_sk_to_curve25519
// compute it).
package nodekey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/ssh"
)

// Errors returned by Load and ParsePublicKey; check them with errors.Is.
var (
	ErrUnsupportedKeyType  = errors.New("unsupported key type: only ed25519 keys can be node keys")
	ErrPassphraseProtected = errors.New("key is passphrase-protected: node keys must be unencrypted")
	ErrInvalidPublicKey    = errors.New("invalid ed25519 public key")
)

// PublicKeySize is the size of an ed25519 public key in bytes.
const PublicKeySize = ed25519.PublicKeySize

// PublicKey is a node's ed25519 public key. Its text form is an OpenSSH
// authorized_keys line without comment ("ssh-ed25519 AAAA...").
type PublicKey [PublicKeySize]byte

// PrivateKey is a node's ed25519 private key.
type PrivateKey struct {
	key ed25519.PrivateKey
}

// Generate returns a new random node key.
func Generate() (PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generate node key: %w", err)
	}
	return PrivateKey{key: priv}, nil
}

// FromSeed returns the key for a 32-byte ed25519 seed (RFC 8032 private key).
func FromSeed(seed []byte) (PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return PrivateKey{}, fmt.Errorf("node key seed: got %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return PrivateKey{key: ed25519.NewKeyFromSeed(seed)}, nil
}

// Parse reads an OpenSSH private key (the "-----BEGIN OPENSSH PRIVATE KEY-----"
// format ssh-keygen writes, or PKCS#8). It must be unencrypted ed25519.
func Parse(pemBytes []byte) (PrivateKey, error) {
	raw, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return PrivateKey{}, ErrPassphraseProtected
		}
		return PrivateKey{}, fmt.Errorf("parse private key: %w", err)
	}
	switch k := raw.(type) {
	case ed25519.PrivateKey:
		return PrivateKey{key: k}, nil
	case *ed25519.PrivateKey:
		return PrivateKey{key: *k}, nil
	default:
		return PrivateKey{}, fmt.Errorf("%w (got %T)", ErrUnsupportedKeyType, raw)
	}
}

// Load reads the private key file at path.
func Load(path string) (PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("load node key: %w", err)
	}
	k, err := Parse(b)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("load node key %s: %w", path, err)
	}
	return k, nil
}

// LoadOrGenerate loads the key at path, or generates one and saves it there
// (mode 0600) when no file exists. created reports whether it generated one.
func LoadOrGenerate(path string) (k PrivateKey, created bool, err error) {
	k, err = Load(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return PrivateKey{}, false, err
	}
	k, err = Generate()
	if err != nil {
		return PrivateKey{}, false, err
	}
	if err := k.Save(path); err != nil {
		return PrivateKey{}, false, err
	}
	return k, true, nil
}

// MarshalOpenSSH returns the key in OpenSSH private key format.
func (k PrivateKey) MarshalOpenSSH(comment string) ([]byte, error) {
	block, err := ssh.MarshalPrivateKey(k.key, comment)
	if err != nil {
		return nil, fmt.Errorf("marshal node key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// Save writes the key to path in OpenSSH format with mode 0600, creating the
// directory (0700) if needed. It writes a temporary file and renames it, so a
// crash never leaves a half-written key.
func (k PrivateKey) Save(path string) error {
	b, err := k.MarshalOpenSSH("tunnelmesh node key")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save node key: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save node key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save node key: %w", err)
	}
	return nil
}

// IsZero reports whether k holds no key.
func (k PrivateKey) IsZero() bool { return len(k.key) == 0 }

// Ed25519 returns the underlying ed25519 private key.
func (k PrivateKey) Ed25519() ed25519.PrivateKey { return k.key }

// Public returns the public half of k.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	copy(p[:], k.key[ed25519.SeedSize:])
	return p
}

// Sign signs msg with k (pure ed25519).
func (k PrivateKey) Sign(msg []byte) []byte { return ed25519.Sign(k.key, msg) }

// Signer returns k as an SSH signer.
func (k PrivateKey) Signer() (ssh.Signer, error) {
	s, err := ssh.NewSignerFromKey(k.key)
	if err != nil {
		return nil, fmt.Errorf("ssh signer: %w", err)
	}
	return s, nil
}

// X25519 returns the X25519 private key derived from k: the first 32 bytes of
// SHA-512(seed), clamped (RFC 7748), as libsodium's
// crypto_sign_ed25519_sk_to_curve25519 does.
func (k PrivateKey) X25519() [32]byte {
	h := sha512.Sum512(k.key[:ed25519.SeedSize])
	var out [32]byte
	copy(out[:], h[:32])
	out[0] &= 248
	out[31] &= 127
	out[31] |= 64
	return out
}

// Verify reports whether sig is p's valid ed25519 signature of msg.
func (p PublicKey) Verify(msg, sig []byte) bool {
	return ed25519.Verify(ed25519.PublicKey(p[:]), msg, sig)
}

// IsZero reports whether p is all zeros.
func (p PublicKey) IsZero() bool { return p == PublicKey{} }

// X25519 returns the X25519 public key for p: the Montgomery u-coordinate
// u = (1+y)/(1-y) of the Edwards point. It fails for bytes that are not a
// valid point and for small-order points.
func (p PublicKey) X25519() ([32]byte, error) {
	var out [32]byte
	pt, err := new(edwards25519.Point).SetBytes(p[:])
	if err != nil {
		return out, ErrInvalidPublicKey
	}
	// Reject small-order points: multiplying by the cofactor gives identity.
	if new(edwards25519.Point).MultByCofactor(pt).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return out, ErrInvalidPublicKey
	}
	copy(out[:], pt.BytesMontgomery())
	return out, nil
}

// Validate checks that p is a usable node key (a valid, non-small-order point).
func (p PublicKey) Validate() error {
	_, err := p.X25519()
	return err
}

// SSH returns p as an SSH public key.
func (p PublicKey) SSH() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.PublicKey(p[:]))
	if err != nil {
		// ssh.NewPublicKey accepts any 32-byte ed25519 key.
		panic("nodekey: ssh.NewPublicKey: " + err.Error())
	}
	return k
}

// String returns p as an authorized_keys line without comment.
func (p PublicKey) String() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p.SSH())))
}

// Fingerprint returns the OpenSSH SHA256 fingerprint of p, as
// `ssh-keygen -l` prints it ("SHA256:...").
func (p PublicKey) Fingerprint() string { return ssh.FingerprintSHA256(p.SSH()) }

// ShortID returns a short, stable identifier for display: the first 12
// characters of the base64 SHA256 fingerprint (without the "SHA256:" prefix).
func (p PublicKey) ShortID() string {
	sum := sha256.Sum256(p.SSH().Marshal())
	return base64.RawStdEncoding.EncodeToString(sum[:])[:12]
}

// MarshalText implements encoding.TextMarshaler.
func (p PublicKey) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *PublicKey) UnmarshalText(b []byte) error {
	k, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*p = k
	return nil
}

// ParsePublicKey parses an authorized_keys line ("ssh-ed25519 AAAA... [comment]").
func ParsePublicKey(s string) (PublicKey, error) {
	var p PublicKey
	if len(s) > 8192 {
		return p, fmt.Errorf("parse public key: %w: too long", ErrInvalidPublicKey)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return p, fmt.Errorf("parse public key: %w", ErrInvalidPublicKey)
	}
	if k.Type() != ssh.KeyAlgoED25519 {
		return p, fmt.Errorf("parse public key: %w (got %s)", ErrUnsupportedKeyType, k.Type())
	}
	ck, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return p, fmt.Errorf("parse public key: %w", ErrInvalidPublicKey)
	}
	ed, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
	if !ok || len(ed) != PublicKeySize {
		return p, fmt.Errorf("parse public key: %w", ErrInvalidPublicKey)
	}
	copy(p[:], ed)
	if err := p.Validate(); err != nil {
		return PublicKey{}, fmt.Errorf("parse public key: %w", err)
	}
	return p, nil
}

// PublicKeyFromSSH converts an SSH public key to a node key.
func PublicKeyFromSSH(k ssh.PublicKey) (PublicKey, error) {
	return ParsePublicKey(string(ssh.MarshalAuthorizedKey(k)))
}
