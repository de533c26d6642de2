// Package selfsigned creates the self-signed TLS certificates TunnelMesh
// servers use when they are given none, and saves them as PEM files. Clients
// trust such a certificate by its pin (package tlspin), not by a CA, so a
// server keeps the files it saved and loads them again on restart.
package selfsigned

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Options describe a certificate to create.
type Options struct {
	// CommonName is the subject's common name, e.g. "tunnelmesh-relay".
	CommonName string
	// Hosts are the names the certificate is valid for: each is an IP
	// address (an IP SAN) or else a DNS name; empty entries are skipped.
	Hosts []string
	// NotAfter is the end of the certificate's validity, e.g.
	// time.Now().AddDate(10, 0, 0). It is valid from an hour before it is
	// created, to allow for clock skew.
	NotAfter time.Time
}

// Generate returns a new self-signed ECDSA P-256 server certificate with its
// parsed Leaf set.
func Generate(o Options) (tls.Certificate, error) {
	now := time.Now()
	if !o.NotAfter.After(now) {
		return tls.Certificate{}, fmt.Errorf("generate self-signed certificate: not after %v is not in the future", o.NotAfter)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate self-signed certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate self-signed certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.CommonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Save writes c's key (PKCS #8, mode 0600) to keyFile and its leaf
// certificate (mode 0644) to certFile, creating their directories (mode
// 0700). Each file is written to a temporary name and renamed into place, so
// a crash never leaves half a file.
func Save(c tls.Certificate, certFile, keyFile string) error {
	if len(c.Certificate) == 0 || c.PrivateKey == nil {
		return errors.New("save self-signed certificate: no certificate or key")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return fmt.Errorf("save self-signed certificate: %w", err)
	}
	for _, dir := range []string{filepath.Dir(keyFile), filepath.Dir(certFile)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("save self-signed certificate: %w", err)
		}
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("save self-signed certificate: %w", err)
	}
	if err := writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o644); err != nil {
		return fmt.Errorf("save self-signed certificate: %w", err)
	}
	return nil
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
