// Package adminclient calls the registry's admin API with the admin
// credential.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// Client is an admin API client.
type Client struct {
	BaseURL    string
	Credential string
	HTTP       *http.Client
}

// New returns a client for the registry at baseURL, trusting the pinned key
// (or the system roots for an empty pin).
func New(baseURL, credential, pin string) *Client {
	return &Client{BaseURL: strings.TrimSuffix(baseURL, "/"), Credential: credential, HTTP: regclient.NewHTTPClient(pin)}
}

// CreateToken creates a join token.
func (c *Client) CreateToken(ctx context.Context, req api.CreateTokenRequest) (*api.CreateTokenResponse, error) {
	var out api.CreateTokenResponse
	if err := c.do(ctx, http.MethodPost, api.PathAdminTokens, req, &out); err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	return &out, nil
}

// Tokens lists join tokens.
func (c *Client) Tokens(ctx context.Context) ([]api.TokenInfo, error) {
	var out []api.TokenInfo
	if err := c.do(ctx, http.MethodGet, api.PathAdminTokens, nil, &out); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// RevokeToken revokes a join token by ID.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	if err := c.do(ctx, http.MethodDelete, api.PathAdminTokens+"/"+url.PathEscape(id), nil, nil); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// Nodes lists nodes.
func (c *Client) Nodes(ctx context.Context) ([]api.NodeInfo, error) {
	var out []api.NodeInfo
	if err := c.do(ctx, http.MethodGet, api.PathAdminNodes, nil, &out); err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// RemoveNode removes a node by name or ID.
func (c *Client) RemoveNode(ctx context.Context, ref string) error {
	if err := c.do(ctx, http.MethodDelete, api.PathAdminNodes+"/"+url.PathEscape(ref), nil, nil); err != nil {
		return fmt.Errorf("remove node: %w", err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Credential)
	req.Header.Set(api.ProtocolHeader, strconv.Itoa(api.ProtocolVersion))
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return regclient.DecodeResponse(resp, 32<<20, out)
}
