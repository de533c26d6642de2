package dialer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Client keeps an SSH transport connection to one peer up: Run dials,
// serves, and redials with backoff until its context ends. It is the SSH
// counterpart of the relay client.
type Client struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex    // guards the fields below
	conn *Conn         // current connection, nil while down
	up   chan struct{} // closed while connected; replaced when the connection ends

	running            atomic.Bool
	connects, failures atomic.Uint64
}

// NewClient returns a client; it does not connect until Run.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("ssh client: %w", err)
	}
	return &Client{cfg: cfg, log: cfg.Logger.With("component", "ssh-dialer", "peer", cfg.Addr), up: make(chan struct{})}, nil
}

// Run connects and keeps reconnecting until ctx ends; then it closes the
// connection and returns nil.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("ssh client: already running")
	}
	defer c.running.Store(false)
	backoff := c.cfg.MinBackoff
	for ctx.Err() == nil {
		conn, err := dial(ctx, &c.cfg)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			c.failures.Add(1)
			c.log.Warn("ssh transport connect failed", "err", err, "retry_in", backoff)
		} else {
			backoff = c.cfg.MinBackoff
			c.connects.Add(1)
			c.setConn(conn)
			c.log.Info("ssh transport connected", "mode", c.cfg.Mode.String())
			select {
			case <-ctx.Done():
			case <-conn.Done():
			}
			c.setConn(nil)
			conn.Close()
			if ctx.Err() != nil {
				break
			}
			c.failures.Add(1)
			c.log.Warn("ssh transport connection lost", "err", conn.Err())
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
	return nil
}

func (c *Client) setConn(conn *Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = conn
	if conn != nil {
		close(c.up)
	} else {
		c.up = make(chan struct{})
	}
}

// Send queues pkt (copied) on the current connection without blocking:
// ErrNotConnected while there is none, ErrQueueFull when its queue is full.
func (c *Client) Send(pkt []byte) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return ErrNotConnected
	}
	return conn.Send(pkt)
}

// Connected reports whether the client has a connection.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// WaitConnected blocks until the client is connected or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		up, connected := c.up, c.conn != nil
		c.mu.Unlock()
		if connected {
			return nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ClientStats are a Client's counters.
type ClientStats struct {
	Connects uint64 // successful connections
	Failures uint64 // failed attempts and lost connections
	Current  Stats  // the current connection's counters (zero while down)
}

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	st := ClientStats{Connects: c.connects.Load(), Failures: c.failures.Load()}
	c.mu.Lock()
	if c.conn != nil {
		st.Current = c.conn.Stats()
	}
	c.mu.Unlock()
	return st
}
