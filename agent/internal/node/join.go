package node

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// JoinRequest says how to join.
type JoinRequest struct {
	Coordinator string // https://host:port
	Token       string
	Name        string
	Key         nodekey.PrivateKey
	KeyFile     string
	Endpoints   []netip.AddrPort
	Services    []api.Service // published by the node (Config.Services)
}

// NormalizeCoordinator checks a coordinator URL and returns it as
// "https://host:port" (port 8443 when none is given).
func NormalizeCoordinator(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("coordinator %q: %w", s, err)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("coordinator %q: must be https://HOST:PORT", s)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("coordinator %q: no host", s)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("coordinator %q: want only https://HOST:PORT", s)
	}
	port := u.Port()
	if port == "" {
		port = "8443"
	}
	return "https://" + netJoin(u.Hostname(), port), nil
}

func netJoin(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// Join joins the mesh with a token, trusting only the registry certificate
// the token pins, and returns the state record to save.
func Join(ctx context.Context, r JoinRequest) (state.Node, error) {
	coord, err := NormalizeCoordinator(r.Coordinator)
	if err != nil {
		return state.Node{}, fmt.Errorf("join: %w", err)
	}
	tok, err := jointoken.Parse(r.Token)
	if err != nil {
		return state.Node{}, fmt.Errorf("join: %w", err)
	}
	name := api.NormalizeName(r.Name)
	if err := api.ValidateName(name); err != nil {
		return state.Node{}, fmt.Errorf("join: node %w", err)
	}
	hc := regclient.NewHTTPClient(tok.Pin)
	resp, err := regclient.Join(ctx, hc, coord, api.JoinRequest{
		Token:     tok.String(),
		Name:      name,
		PublicKey: r.Key.Public(),
		Endpoints: r.Endpoints,
		Services:  r.Services,
	}, r.Key)
	if err != nil {
		return state.Node{}, err
	}
	n := state.FromJoin(coord, tok.Pin, r.KeyFile, resp)
	if err := n.Validate(); err != nil {
		return state.Node{}, fmt.Errorf("join: registry answer: %w", err)
	}
	return n, nil
}
