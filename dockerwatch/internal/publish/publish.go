// Package publish is dockerwatch's client of the node agent's local API
// (HTTP over the unix socket in the agent's state directory, root only):
// it reads the node's mesh address (GET /v1/status) and sets the services
// dockerwatch runs (PUT /v1/services, owner "dockerwatch"), which the node
// publishes to the registry with its own, so that meshdns answers
// <name>.<node>.<zone> and `tunnelmesh status` lists them.
package publish

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeapi"
)

// Paths and owners on the agent's local API. Owner's services are the
// containers' (api.ServiceOwnerDocker: the policy's docker section opens
// them); MetricsOwner's is dockerwatch's own metrics-dockerwatch, kept
// apart so that the docker section never opens the metrics port (the
// policy's metrics rule does, to nodes tagged monitoring).
const (
	PathStatus   = nodeapi.PathStatus
	PathServices = nodeapi.PathServices
	Owner        = api.ServiceOwnerDocker
	MetricsOwner = "dockerwatch-metrics"
)

// Agent is a client of one agent's local API socket.
type Agent struct {
	Socket string
	hc     *http.Client
}

// New returns a client of the socket at path.
func New(path string) *Agent {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Agent{Socket: path, hc: &http.Client{Transport: tr}}
}

// ErrNodeRemoved is returned (wrapped) by MeshAddr while the registry
// refuses the node (an admin removed it): nothing may be served through it.
var ErrNodeRemoved = errors.New("node removed from the mesh")

// MeshAddr returns the node's mesh address; ErrNodeRemoved while the node
// is removed.
func (a *Agent) MeshAddr(ctx context.Context) (netip.Addr, error) {
	var st nodeapi.Status
	if err := a.do(ctx, http.MethodGet, PathStatus, nil, &st); err != nil {
		return netip.Addr{}, fmt.Errorf("agent status: %w", err)
	}
	if st.Removed {
		return netip.Addr{}, fmt.Errorf("agent status: %w", ErrNodeRemoved)
	}
	if !st.IP.IsValid() {
		return netip.Addr{}, fmt.Errorf("agent status: no mesh address")
	}
	return st.IP, nil
}

// Publish sets dockerwatch's services on the node (none withdraws them).
func (a *Agent) Publish(ctx context.Context, svcs []api.Service) error {
	return a.PublishAs(ctx, Owner, svcs)
}

// PublishAs sets owner's services on the node (none withdraws them).
func (a *Agent) PublishAs(ctx context.Context, owner string, svcs []api.Service) error {
	if svcs == nil {
		svcs = []api.Service{}
	}
	body, err := json.Marshal(nodeapi.ServicesRequest{Owner: owner, Services: svcs})
	if err != nil {
		return fmt.Errorf("publish services: %w", err)
	}
	if err := a.do(ctx, http.MethodPut, PathServices, body, nil); err != nil {
		return fmt.Errorf("publish services: %w", err)
	}
	return nil
}

func (a *Agent) do(ctx context.Context, method, path string, body []byte, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://tunnelmesh"+path, r)
	if err != nil {
		return err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("local api %s: %w", a.Socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("local api %s: %w", a.Socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e nodeapi.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("local api %s: %s: %s", a.Socket, resp.Status, e.Error)
		}
		return fmt.Errorf("local api %s: %s", a.Socket, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("local api %s: decode: %w", a.Socket, err)
		}
	}
	return nil
}

// Records returns the service records to publish for svcs: one per port
// (meshdns answers one SRV record per port), each with the container's
// tunnelmesh.allow selectors, which the registry's policy compiles into
// the node's filter under its docker section. Sorted by name, protocol and
// port.
func Records(svcs []desired.Service) []api.Service {
	var out []api.Service
	for _, s := range svcs {
		out = append(out, api.Service{Name: s.Name, Protocol: s.Proto, Port: s.Port, Allow: strings.Join(s.Allow, ",")})
	}
	slices.SortFunc(out, func(a, b api.Service) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	})
	return out
}
