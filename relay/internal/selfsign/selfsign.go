// Package selfsign makes the self-signed TLS certificate a relay serves when
// it is given none. Nodes trust it by its tlspin pin, not by a CA.
package selfsign

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/selfsigned"
)

// Generate returns a new self-signed ECDSA P-256 certificate for hosts (DNS
// names or IP addresses), valid for ten years.
func Generate(hosts []string) (tls.Certificate, error) {
	c, err := selfsigned.Generate(selfsigned.Options{
		CommonName: "tunnelmesh-relay",
		Hosts:      hosts,
		NotAfter:   time.Now().AddDate(10, 0, 0),
	})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signed cert: %w", err)
	}
	return c, nil
}

// LoadOrGenerate loads the certificate and key PEM files in dir
// (relay.crt, relay.key), or generates them there (key mode 0600) when
// neither exists, so the certificate and its pin survive restarts.
func LoadOrGenerate(dir string, hosts []string) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, "relay.crt"), filepath.Join(dir, "relay.key")
	c, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("load self-signed cert: %w", err)
	}
	c, err = Generate(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := selfsigned.Save(c, certPath, keyPath); err != nil {
		return tls.Certificate{}, err
	}
	return c, nil
}
