package coordinator

import (
	"fmt"
	"net"
	"net/url"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/scrapecred"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/server"
)

// enableServiceDiscovery serves Prometheus HTTP service discovery on the
// API, authenticated by the scrape tokens kept in the data directory
// (tunnelmesh admin scrape-tokens create). The registry lists itself at
// the host and port of public_url when that is set.
func enableServiceDiscovery(srv *server.Server, cfg Config) error {
	creds, err := scrapecred.Open(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("service discovery: %w", err)
	}
	srv.EnableServiceDiscovery(server.SDSettings{Credentials: creds, RegistryTarget: registryTarget(cfg.PublicURL)})
	return nil
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
