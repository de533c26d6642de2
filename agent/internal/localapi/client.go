package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// ErrNotRunning is returned by the client when no node serves the socket.
var ErrNotRunning = errors.New("no tunnelmesh node is running for this state directory")

// Client calls a running node's local API.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{Socket: path, hc: &http.Client{Transport: tr}}
}

// Status fetches the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, http.MethodGet, PathStatus, &s)
	return s, err
}

// Ping pings peer (a name or mesh IP) through the tunnel.
func (c *Client) Ping(ctx context.Context, peer string) (PingResult, error) {
	var r PingResult
	err := c.do(ctx, http.MethodPost, PathPing+"?peer="+url.QueryEscape(peer), &r)
	return r, err
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	return c.doBody(ctx, method, path, nil, out)
}

func (c *Client) doBody(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://tunnelmesh"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such file") {
			if errors.Is(err, os.ErrPermission) {
				return fmt.Errorf("local api %s: permission denied (run as root)", c.Socket)
			}
			return fmt.Errorf("local api %s: %w", c.Socket, ErrNotRunning)
		}
		return fmt.Errorf("local api: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("local api: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("local api: %s", resp.Status)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("local api: decode: %w", err)
	}
	return nil
}
