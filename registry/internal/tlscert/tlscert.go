// Package tlscert provides the registry's TLS certificate: the configured
// PEM files, or a self-signed certificate created once in the data directory
// and kept, so that its pin (package tlspin) stays valid for every token.
package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/selfsigned"
	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
)

// File names of the generated certificate in the data directory.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

// Paths returns the certificate and key files the registry uses: the
// configured ones, or the generated ones in dataDir.
func Paths(dataDir, certFile, keyFile string) (string, string) {
	if certFile != "" {
		return certFile, keyFile
	}
	return filepath.Join(dataDir, CertFile), filepath.Join(dataDir, KeyFile)
}

// Load returns the configured certificate (certFile and keyFile set) or the
// self-signed one in dataDir, creating it on first use with the given extra
// host names. It returns the pin of the leaf certificate too.
func Load(dataDir, certFile, keyFile string, hosts []string) (tls.Certificate, string, error) {
	if certFile == "" {
		certFile, keyFile = Paths(dataDir, "", "")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := generate(certFile, keyFile, hosts); err != nil {
				return tls.Certificate{}, "", err
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("load tls certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("load tls certificate %s: %w", certFile, err)
	}
	cert.Leaf = leaf
	return cert, tlspin.Fingerprint(leaf), nil
}

// PinFromFile returns the pin of the first certificate in a PEM file.
func PinFromFile(certFile string) (string, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return "", fmt.Errorf("read certificate pin: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Errorf("read certificate pin: %s: no PEM certificate", certFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("read certificate pin: %s: %w", certFile, err)
	}
	return tlspin.Fingerprint(c), nil
}

func generate(certFile, keyFile string, hosts []string) error {
	c, err := selfsigned.Generate(selfsigned.Options{
		CommonName: "tunnelmesh-registry",
		Hosts:      append([]string{"localhost", "127.0.0.1", "::1"}, hosts...),
		NotAfter:   time.Now().AddDate(20, 0, 0),
	})
	if err != nil {
		return fmt.Errorf("generate tls certificate: %w", err)
	}
	if err := selfsigned.Save(c, certFile, keyFile); err != nil {
		return fmt.Errorf("generate tls certificate: %w", err)
	}
	// Everything in the data directory is the registry's own (0600).
	if err := os.Chmod(certFile, 0o600); err != nil {
		return fmt.Errorf("generate tls certificate: %w", err)
	}
	return nil
}
