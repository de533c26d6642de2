// Package tlscert provides the registry's TLS certificate: the configured
// PEM files, or a self-signed certificate created once in the data directory
// and kept, so that its pin (package tlspin) stays valid for every token.
package tlscert

import (
	"bytes"
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

// Shared stores a value once for every registry replica and returns the
// stored one (store.Secrets.Secret with a fixed name).
type Shared func(create func() ([]byte, error)) ([]byte, error)

// LoadShared returns the self-signed certificate every replica of a shared
// store serves, so the pin in a join token made on one replica is right for
// all of them. The first replica to start stores its certificate and key
// (the ones already in dataDir, else new ones) through shared; every
// replica then writes the stored pair into dataDir (tls.crt, tls.key, 0600)
// for the admin CLI, and serves it.
func LoadShared(dataDir string, hosts []string, shared Shared) (tls.Certificate, string, error) {
	certFile, keyFile := Paths(dataDir, "", "")
	pair, err := shared(func() ([]byte, error) {
		if c, err := os.ReadFile(certFile); err == nil {
			k, err := os.ReadFile(keyFile)
			if err != nil {
				return nil, err
			}
			if _, err := tls.X509KeyPair(c, k); err != nil {
				return nil, fmt.Errorf("%s, %s: %w", certFile, keyFile, err)
			}
			return append(c, k...), nil
		}
		c, err := selfsigned.Generate(selfsigned.Options{
			CommonName: "tunnelmesh-registry",
			Hosts:      append([]string{"localhost", "127.0.0.1", "::1"}, hosts...),
			NotAfter:   time.Now().AddDate(20, 0, 0),
		})
		if err != nil {
			return nil, err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		if err != nil {
			return nil, err
		}
		out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
		return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), nil
	})
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("load shared tls certificate: %w", err)
	}
	var certPEM, keyPEM []byte
	for rest := pair; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			certPEM = append(certPEM, pem.EncodeToMemory(blk)...)
		} else {
			keyPEM = append(keyPEM, pem.EncodeToMemory(blk)...)
		}
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("load shared tls certificate: stored pair: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return tls.Certificate{}, "", fmt.Errorf("load shared tls certificate: %w", err)
	}
	for _, f := range []struct {
		path string
		b    []byte
	}{{keyFile, keyPEM}, {certFile, certPEM}} {
		if err := writeIfChanged(f.path, f.b); err != nil {
			return tls.Certificate{}, "", fmt.Errorf("load shared tls certificate: %w", err)
		}
	}
	return Load(dataDir, "", "", hosts)
}

// writeIfChanged writes b to path (0600, atomically) unless it holds b.
func writeIfChanged(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
