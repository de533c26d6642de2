// Package regclient is the node side of the registry API: join, then
// authenticated calls (netmap watch, endpoint reports, heartbeats, leave).
// The agent, meshdns and sshgw use it; the registry's fake in
// registrytest speaks the same API.
package regclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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

// Client makes authenticated node calls.
type Client struct {
	BaseURL    string
	HTTP       *http.Client
	Credential nodeauth.Credential
	Key        nodekey.PrivateKey
	// Now is the clock used to date requests; time.Now when nil.
	Now func() time.Time
}

// New returns a client for the node credentials in c.
func New(c Credentials) (*Client, error) {
	cred, err := nodeauth.ParseCredential(c.Credential)
	if err != nil {
		return nil, fmt.Errorf("node credential: %w", err)
	}
	return &Client{BaseURL: c.Coordinator, HTTP: NewHTTPClient(c.Pin), Credential: cred, Key: c.Key}, nil
}

func (c *Client) sign(r *http.Request, body []byte) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	nodeauth.Sign(r, body, c.Credential, c.Key, now())
}

// Netmap fetches the node's netmap once the mesh version is above since,
// waiting up to wait. It returns ErrNotModified when nothing changed.
func (c *Client) Netmap(ctx context.Context, since uint64, wait time.Duration) (*api.Netmap, error) {
	q := url.Values{}
	q.Set("since", strconv.FormatUint(since, 10))
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var nm api.Netmap
	if err := do(ctx, c.HTTP, c.BaseURL, http.MethodGet, api.PathNetmap+"?"+q.Encode(), nil, &nm, c.sign); err != nil {
		if errors.Is(err, ErrNotModified) {
			return nil, err
		}
		return nil, fmt.Errorf("fetch netmap: %w", err)
	}
	return &nm, nil
}

// ReportEndpoints tells the registry the node's candidate endpoints.
func (c *Client) ReportEndpoints(ctx context.Context, req api.EndpointsRequest) error {
	if err := do(ctx, c.HTTP, c.BaseURL, http.MethodPost, api.PathEndpoints, req, nil, c.sign); err != nil {
		return fmt.Errorf("report endpoints: %w", err)
	}
	return nil
}

// Heartbeat tells the registry the node is alive.
func (c *Client) Heartbeat(ctx context.Context) error {
	if err := do(ctx, c.HTTP, c.BaseURL, http.MethodPost, api.PathHeartbeat, struct{}{}, nil, c.sign); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// Leave removes the node from the mesh.
func (c *Client) Leave(ctx context.Context) error {
	if err := do(ctx, c.HTTP, c.BaseURL, http.MethodPost, api.PathLeave, struct{}{}, nil, c.sign); err != nil {
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
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return ErrNotModified
	}
	return DecodeResponse(resp, 16<<20, out)
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
