// Package tlspin pins a TLS server by the SHA-256 of its certificate's public
// key (SubjectPublicKeyInfo), base64url without padding. Join tokens carry
// the pin, so a joining node needs no CA and trusts nothing else; a renewed
// certificate with the same key keeps its pin.
package tlspin

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
)

// ErrPinMismatch is returned when the server's key is not the pinned one.
var ErrPinMismatch = errors.New("server certificate does not match the pinned key")

// Fingerprint returns the pin of cert.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ClientConfig returns a TLS client configuration that accepts exactly the
// server whose leaf certificate has the given pin. With an empty pin it
// verifies the server against the system roots, as usual.
func ClientConfig(pin string) *tls.Config {
	if pin == "" {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The standard chain check is replaced by the pin check below; the
		// pin is stronger than any CA for this one server.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("tls pin: %w: no certificate", ErrPinMismatch)
			}
			got := Fingerprint(cs.PeerCertificates[0])
			if subtle.ConstantTimeCompare([]byte(got), []byte(pin)) != 1 {
				return fmt.Errorf("tls pin: %w", ErrPinMismatch)
			}
			return nil
		},
	}
}
