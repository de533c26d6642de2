package coordinator

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/scrapecred"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/server"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
)

// ScrapeCAFile is the name of the certificate file written beside
// scrape_token_file.
const ScrapeCAFile = "registry.crt"

// enableServiceDiscovery serves Prometheus HTTP service discovery on the
// API, authenticated by the scrape tokens kept in the data directory
// (tunnelmesh admin scrape-tokens create). The registry lists itself at
// the host and port of public_url when that is set. With
// scrape_token_file, a first start writes a scrape token there, and every
// start the certificate (DER certDER) beside it.
//
// It registers with reg the expiry times Prometheus alerts on: the TLS
// certificate's and every expiring scrape token's.
func enableServiceDiscovery(srv *server.Server, st store.Store, cfg Config, certDER []byte, reg prometheus.Registerer, log *slog.Logger) error {
	var creds *scrapecred.Store
	var err error
	if sh, ok := st.(store.ScrapeTokens); ok {
		// Replicas of a shared store share the scrape tokens.
		creds, err = scrapecred.OpenShared(sh)
	} else {
		creds, err = scrapecred.Open(cfg.DataDir)
	}
	if err != nil {
		return fmt.Errorf("service discovery: %w", err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return fmt.Errorf("service discovery: certificate: %w", err)
	}
	certExpiry := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "tunnelmesh", Subsystem: "registry", Name: "tls_cert_expiry_timestamp_seconds",
		Help: "Unix time at which the registry's TLS certificate expires.",
	})
	certExpiry.Set(float64(cert.NotAfter.Unix()))
	for _, c := range []prometheus.Collector{certExpiry, creds.Collector()} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("service discovery: metrics: %w", err)
		}
	}
	if cfg.ScrapeTokenFile != "" {
		if err := writeScrapeToken(creds, cfg.ScrapeTokenFile, certDER, log); err != nil {
			return fmt.Errorf("scrape_token_file: %w", err)
		}
	}
	srv.EnableServiceDiscovery(server.SDSettings{Credentials: creds, RegistryTarget: registryTarget(cfg.PublicURL)})
	return nil
}

func writeScrapeToken(creds *scrapecred.Store, path string, certDER []byte, log *slog.Logger) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	if err := writeFileAtomic(filepath.Join(dir, ScrapeCAFile), certPEM, 0o644); err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	tok, info, err := creds.Create("bootstrap", 0, time.Now())
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		creds.Revoke(info.ID)
		return err
	}
	log.Info("bootstrap scrape token written", "scrape_token_id", info.ID, "file", path)
	return nil
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// registryTarget is host:port of the public URL (port 443 when it has
// none), or "" when there is no public URL.
func registryTarget(publicURL string) string {
	if publicURL == "" {
		return ""
	}
	u, err := url.Parse(publicURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
