package adminclient

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Policy returns a stored policy version; 0 means the current one.
func (c *Client) Policy(ctx context.Context, version uint64) (*policy.Version, error) {
	path := api.PathAdminPolicy
	if version != 0 {
		path += "?version=" + strconv.FormatUint(version, 10)
	}
	var out policy.Version
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, fmt.Errorf("get policy: %w", err)
	}
	return &out, nil
}

// PolicyVersions lists the stored policy versions, newest first.
func (c *Client) PolicyVersions(ctx context.Context) ([]policy.VersionInfo, error) {
	var out []policy.VersionInfo
	if err := c.do(ctx, http.MethodGet, api.PathAdminPolicy+policy.PathVersionsSuffix, nil, &out); err != nil {
		return nil, fmt.Errorf("list policy versions: %w", err)
	}
	return out, nil
}

// PutPolicy uploads a policy; the registry checks it and runs its tests
// before storing it.
func (c *Client) PutPolicy(ctx context.Context, req policy.PutRequest) (*policy.PutResponse, error) {
	var out policy.PutResponse
	if err := c.do(ctx, http.MethodPut, api.PathAdminPolicy, req, &out); err != nil {
		return nil, fmt.Errorf("put policy: %w", err)
	}
	return &out, nil
}
