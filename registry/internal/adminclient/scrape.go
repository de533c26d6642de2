package adminclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/scrapecred"
)

// CreateScrapeToken creates a scrape token for Prometheus service
// discovery; the answer holds the token, shown only once.
func (c *Client) CreateScrapeToken(ctx context.Context, req scrapecred.CreateRequest) (*scrapecred.CreateResponse, error) {
	var out scrapecred.CreateResponse
	if err := c.do(ctx, http.MethodPost, scrapecred.PathAdmin, req, &out); err != nil {
		return nil, fmt.Errorf("create scrape token: %w", err)
	}
	return &out, nil
}

// ScrapeTokens lists scrape tokens.
func (c *Client) ScrapeTokens(ctx context.Context) ([]scrapecred.Info, error) {
	var out []scrapecred.Info
	if err := c.do(ctx, http.MethodGet, scrapecred.PathAdmin, nil, &out); err != nil {
		return nil, fmt.Errorf("list scrape tokens: %w", err)
	}
	return out, nil
}

// RevokeScrapeToken deletes a scrape token by ID.
func (c *Client) RevokeScrapeToken(ctx context.Context, id string) error {
	if err := c.do(ctx, http.MethodDelete, scrapecred.PathAdmin+"/"+url.PathEscape(id), nil, nil); err != nil {
		return fmt.Errorf("revoke scrape token: %w", err)
	}
	return nil
}
