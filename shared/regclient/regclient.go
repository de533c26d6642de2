// Package regclient is the node side of the registry API: join, then
// authenticated calls (netmap watch, endpoint reports, heartbeats, leave).
// The agent, meshdns and sshgw use it; the registry's fake in
// registrytest speaks the same API.
//
// # Failover
//
// Several registry replicas may serve one mesh (registry store: postgres);
// every netmap lists their URLs (api.Netmap.Registries) and a Client takes
// them from each netmap it fetches (SetReplicas). A node call goes to the
// replica in use; when that replica fails (no connection, a connection
// lost, no answer within Client.AttemptTimeout, or for a watch within its wait
// plus that, a TLS failure, a 5xx answer) the call is made again, signed
// afresh, on the next replica, each replica at most once per call, and the
// replica that answers stays in use. Any other answer (4xx, 304) is the
// mesh's answer and is returned as it is. Replicas serve one TLS key, so
// the client's pin holds for all of them.
//
// # Incremental netmaps
//
// A Client keeps the last netmap it fetched. Asked for the netmap after
// that version, it asks the registry for only what changed
// (api.NetmapDelta) and applies it to its copy; a delta that does not apply
// (a version gap, another base) makes it fetch the whole netmap at once.
// Callers always get a whole netmap.
package regclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
)

// ErrNotModified is returned by Netmap when the wait ended with no change.
var ErrNotModified = errors.New("netmap not modified")

// APIError is a non-2xx answer from the registry.
type APIError struct {
	Status int
	Body   api.Error
}

func (e *APIError) Error() string {
	return fmt.Sprintf("registry: %s (%d %s)", e.Body.Error, e.Status, e.Body.Code)
}

// IsCode reports whether err is an APIError with the given code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Body.Code == code
}

// NewHTTPClient returns an HTTP client for the registry at baseURL trusting
// exactly the pinned certificate key (or the system roots for an empty pin).
func NewHTTPClient(pin string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlspin.ClientConfig(pin)
	tr.MaxIdleConnsPerHost = 4
	// A replica that accepts no connection within this is failed over.
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}).DialContext
	return &http.Client{Transport: tr}
}

// Join joins the mesh as the node key key (req.PublicKey is set to its
// public half), signing the request with it (nodeauth.SignJoin). baseURL is
// "https://host:port"; hc trusts the pin of the token (NewHTTPClient).
func Join(ctx context.Context, hc *http.Client, baseURL string, req api.JoinRequest, key nodekey.PrivateKey) (*api.JoinResponse, error) {
	req.ProtocolVersion = api.ProtocolVersion
	if err := nodeauth.SignJoin(&req, key, time.Now()); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	var resp api.JoinResponse
	if err := do(ctx, hc, baseURL, http.MethodPost, api.PathJoin, req, &resp, nil); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	return &resp, nil
}

// Info fetches the registry's unauthenticated info.
func Info(ctx context.Context, hc *http.Client, baseURL string) (*api.Info, error) {
	var info api.Info
	if err := do(ctx, hc, baseURL, http.MethodGet, api.PathInfo, nil, &info, nil); err != nil {
		return nil, fmt.Errorf("registry info: %w", err)
	}
	return &info, nil
}

// Client makes authenticated node calls, failing over between the
// registry's replicas (see Failover in the package doc). Its methods may be
// called concurrently; set the exported fields before the first call.
type Client struct {
	// BaseURL is the registry the node joined through ("https://host:port"),
	// tried first.
	BaseURL    string
	HTTP       *http.Client
	Credential nodeauth.Credential
	Key        nodekey.PrivateKey
	// Now is the clock used to date requests; time.Now when nil.
	Now func() time.Time
	// AttemptTimeout bounds one attempt on one replica (a netmap watch's:
	// its wait plus this); DefaultAttemptTimeout when zero.
	AttemptTimeout time.Duration

	mu       sync.Mutex // guards the fields below
	replicas []string   // the other replicas, see SetReplicas
	cur      string     // the replica in use; BaseURL when not listed
	held     *api.Netmap
	heldBase string // api.NetmapBaseHeader of the answer held came from
}

// New returns a client for the node credentials in c.
func New(c Credentials) (*Client, error) {
	cred, err := nodeauth.ParseCredential(c.Credential)
	if err != nil {
		return nil, fmt.Errorf("node credential: %w", err)
	}
	cl := &Client{BaseURL: c.Coordinator, HTTP: NewHTTPClient(c.Pin), Credential: cred, Key: c.Key}
	cl.SetReplicas(c.Registries)
	return cl, nil
}

func (c *Client) sign(r *http.Request, body []byte) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	nodeauth.Sign(r, body, c.Credential, c.Key, now())
}

// Netmap fetches the node's netmap once the mesh version is above since,
// waiting up to wait. It returns ErrNotModified when nothing changed. A
// netmap that lists registry replicas sets the client's (SetReplicas).
//
// When since is the version of the netmap the client fetched last, it asks
// for a delta on it (see Incremental netmaps in the package doc). The
// netmap returned is the caller's; the records of its peers share their
// slices with the client's copy and must not be modified.
func (c *Client) Netmap(ctx context.Context, since uint64, wait time.Duration) (*api.Netmap, error) {
	c.mu.Lock()
	held, heldBase := c.held, c.heldBase
	c.mu.Unlock()
	if held == nil || held.Version != since || since == 0 {
		held, heldBase = nil, ""
	}
	nm, base, err := c.fetchNetmap(ctx, since, wait, held, heldBase)
	if errors.Is(err, api.ErrDeltaBase) {
		// Since 0 answers at once with the whole netmap.
		nm, base, err = c.fetchNetmap(ctx, 0, 0, nil, "")
	}
	if err != nil {
		if errors.Is(err, ErrNotModified) {
			return nil, err
		}
		return nil, fmt.Errorf("fetch netmap: %w", err)
	}
	c.mu.Lock()
	c.held, c.heldBase = nm, base
	c.mu.Unlock()
	if len(nm.Registries) > 0 {
		c.SetReplicas(nm.Registries)
	}
	out := *nm
	out.Peers = slices.Clone(nm.Peers)
	out.Relays = slices.Clone(nm.Relays)
	out.Registries = slices.Clone(nm.Registries)
	return &out, nil
}

// fetchNetmap makes one netmap watch, asking for a delta on held when
// heldBase is set, and returns the whole netmap and the answer's
// api.NetmapBaseHeader.
func (c *Client) fetchNetmap(ctx context.Context, since uint64, wait time.Duration, held *api.Netmap, heldBase string) (*api.Netmap, string, error) {
	q := url.Values{}
	q.Set("since", strconv.FormatUint(since, 10))
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	if heldBase != "" {
		q.Set(api.NetmapDeltaParam, heldBase)
	}
	var d api.NetmapDelta
	var hdr http.Header
	err := c.call(ctx, wait, func(ctx context.Context, base string) error {
		d = api.NetmapDelta{}
		return doHeader(ctx, c.HTTP, base, http.MethodGet, api.PathNetmap+"?"+q.Encode(), nil, &d, c.sign, &hdr)
	})
	if err != nil {
		return nil, "", err
	}
	nm, err := api.ApplyDelta(held, &d)
	if err != nil {
		return nil, "", err
	}
	return nm, hdr.Get(api.NetmapBaseHeader), nil
}

// nodeCall makes one signed node call with failover.
func (c *Client) nodeCall(ctx context.Context, method, path string, in any) error {
	return c.call(ctx, 0, func(ctx context.Context, base string) error {
		return do(ctx, c.HTTP, base, method, path, in, nil, c.sign)
	})
}

// ReportEndpoints tells the registry the node's candidate endpoints.
func (c *Client) ReportEndpoints(ctx context.Context, req api.EndpointsRequest) error {
	if err := c.nodeCall(ctx, http.MethodPost, api.PathEndpoints, req); err != nil {
		return fmt.Errorf("report endpoints: %w", err)
	}
	return nil
}

// Heartbeat tells the registry the node is alive.
func (c *Client) Heartbeat(ctx context.Context) error {
	if err := c.nodeCall(ctx, http.MethodPost, api.PathHeartbeat, struct{}{}); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// Leave removes the node from the mesh.
func (c *Client) Leave(ctx context.Context) error {
	if err := c.nodeCall(ctx, http.MethodPost, api.PathLeave, struct{}{}); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// Watch calls fn with every new netmap until ctx ends, long-polling the
// registry and retrying with backoff (up to maxBackoff) when it is
// unreachable. onError, if not nil, hears every failed attempt. It returns
// ctx's error, or fn's error when fn fails.
func (c *Client) Watch(ctx context.Context, since uint64, fn func(*api.Netmap) error, onError func(error)) error {
	const maxBackoff = 5 * time.Second
	backoff := 100 * time.Millisecond
	for {
		nm, err := c.Netmap(ctx, since, api.DefaultWatchWait)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrNotModified):
			continue
		case err != nil:
			if onError != nil {
				onError(err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		since = nm.Version
		if err := fn(nm); err != nil {
			return err
		}
	}
}

func do(ctx context.Context, hc *http.Client, baseURL, method, path string, in, out any, sign func(*http.Request, []byte)) error {
	return doHeader(ctx, hc, baseURL, method, path, in, out, sign, nil)
}

// doHeader is do that also stores the answer's header in hdr, if not nil.
func doHeader(ctx context.Context, hc *http.Client, baseURL, method, path string, in, out any, sign func(*http.Request, []byte), hdr *http.Header) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(baseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(api.ProtocolHeader, strconv.Itoa(api.ProtocolVersion))
	if sign != nil {
		sign(req, body)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return err // the caller's deadline or cancel (see Client.call)
		}
		return &failoverError{err}
	}
	defer resp.Body.Close()
	if hdr != nil {
		*hdr = resp.Header
	}
	if resp.StatusCode == http.StatusNotModified {
		return ErrNotModified
	}
	err = DecodeResponse(resp, 16<<20, out)
	var ae *APIError
	if err != nil && ctx.Err() == nil && (!errors.As(err, &ae) || ae.Status >= 500) {
		// A body cut short, or the replica failing (5xx).
		return &failoverError{err}
	}
	return err
}

// DecodeResponse reads an answer of the registry API, at most limit bytes
// of its body. A non-2xx status is an *APIError carrying the api.Error of
// the body, or, when the body is not one, its text with code
// api.CodeInternal. A 2xx body is decoded as JSON into out unless out is
// nil. The caller closes resp.Body.
func DecodeResponse(resp *http.Response, limit int64, out any) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &ae.Body) != nil || ae.Body.Error == "" {
			ae.Body = api.Error{Error: strings.TrimSpace(string(data)), Code: api.CodeInternal}
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode response: %w", err)
		}
	}
	return nil
}
