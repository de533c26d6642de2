// Package engine is dockerwatch's seam to the Docker Engine API: the two calls
// it makes (the container list and the event stream), behind an interface
// that the real client (New, on github.com/moby/moby/client with API version
// negotiation) and the replay of a recorded engine stream (package
// enginetest) both satisfy.
//
// dockerwatch only reads from the engine: the socket can be mounted
// read-only.
package engine

import (
	"context"
	"fmt"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// Source is what dockerwatch asks of the engine.
type Source interface {
	// List returns every container the engine knows, running or not.
	List(ctx context.Context) ([]container.Summary, error)
	// Events streams the engine's container events from now until ctx ends
	// or the stream fails; the error channel then receives one error (the
	// ctx error on cancel) and both channels are abandoned.
	Events(ctx context.Context) (<-chan events.Message, <-chan error)
}

// Client is a Source on a Docker engine.
type Client struct {
	c *client.Client
}

// New connects to the engine at host (as DOCKER_HOST: unix:///var/run/docker.sock).
// The client negotiates the API version with the engine on its first call
// (moby/moby/client does by default; it speaks API 1.40 and later, so
// Docker 19.03 onwards, and uses 1.41 with Docker 20.10).
func New(host string) (*Client, error) {
	c, err := client.New(client.WithHost(host))
	if err != nil {
		return nil, fmt.Errorf("docker client %s: %w", host, err)
	}
	return &Client{c: c}, nil
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.c.Close() }

// List implements Source.
func (c *Client) List(ctx context.Context) ([]container.Summary, error) {
	r, err := c.c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return r.Items, nil
}

// Events implements Source; only container events are asked for.
func (c *Client) Events(ctx context.Context) (<-chan events.Message, <-chan error) {
	r := c.c.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).Add("type", string(events.ContainerEventType))})
	return r.Messages, r.Err
}

// APIVersion returns the API version the client negotiated (after a call).
func (c *Client) APIVersion() string { return c.c.ClientVersion() }
