// Package jointoken holds the format of join tokens.
//
// A token reads "tm1.<id>.<secret>.<pin>":
//
//   - id: 12 characters, base64url of 9 random bytes; names the token in the
//     admin API (tokens list, revoke). Not secret.
//   - secret: 32 characters, base64url of 24 random bytes; stored only as
//     its SHA-256 by the registry.
//   - pin: 43 characters, base64url of the SHA-256 of the registry's TLS
//     certificate public key (SubjectPublicKeyInfo), see package tlspin. The
//     joining node trusts exactly that key and no CA.
package jointoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

const prefix = "tm1"

// ErrMalformed is returned by Parse for anything that is not a token.
var ErrMalformed = errors.New("malformed join token")

var b64 = base64.RawURLEncoding

// Token is a parsed join token.
type Token struct {
	ID     string
	Secret string
	Pin    string
}

// New returns a token with a fresh random ID and secret for the given pin.
func New(pin string) (Token, error) {
	var id [9]byte
	var secret [24]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Token{}, fmt.Errorf("new join token: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return Token{}, fmt.Errorf("new join token: %w", err)
	}
	return Token{ID: b64.EncodeToString(id[:]), Secret: b64.EncodeToString(secret[:]), Pin: pin}, nil
}

// String returns the token's text form.
func (t Token) String() string {
	return prefix + "." + t.ID + "." + t.Secret + "." + t.Pin
}

// SecretHash returns the SHA-256 of the secret, as the registry stores it.
func (t Token) SecretHash() [32]byte { return sha256.Sum256([]byte(t.Secret)) }

// Parse parses a token's text form. It checks the shape of every part and
// says which one is wrong, but never echoes the secret.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		return Token{}, fmt.Errorf("%w: too long", ErrMalformed)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 4 || parts[0] != prefix {
		return Token{}, fmt.Errorf("%w: want tm1.<id>.<secret>.<pin>", ErrMalformed)
	}
	t := Token{ID: parts[1], Secret: parts[2], Pin: parts[3]}
	if !validPart(t.ID, 9) {
		return Token{}, fmt.Errorf("%w: bad id", ErrMalformed)
	}
	if !validPart(t.Secret, 24) {
		return Token{}, fmt.Errorf("%w: bad secret", ErrMalformed)
	}
	if !validPart(t.Pin, 32) {
		return Token{}, fmt.Errorf("%w: bad certificate pin", ErrMalformed)
	}
	return t, nil
}

// ValidID reports whether s has the shape of a token ID.
func ValidID(s string) bool { return validPart(s, 9) }

func validPart(s string, n int) bool {
	b, err := b64.DecodeString(s)
	return err == nil && len(b) == n
}
