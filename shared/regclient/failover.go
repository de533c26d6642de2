package regclient

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultAttemptTimeout is Client.AttemptTimeout's default: a replica
// that does not answer within it (within a watch's wait plus it) counts as
// failed and the next one is tried.
const DefaultAttemptTimeout = 10 * time.Second

// failoverError marks a failure of the replica itself (unreachable,
// timed out, 5xx), after which the next replica is tried.
type failoverError struct{ err error }

func (e *failoverError) Error() string { return e.err.Error() }
func (e *failoverError) Unwrap() error { return e.err }

// IsFailover reports whether err is a failure of the registry replica
// itself (connection refused or lost, timeout, TLS failure, 5xx) rather
// than an answer about the request; such a failure makes the client turn
// to the next replica.
func IsFailover(err error) bool {
	var fe *failoverError
	return errors.As(err, &fe)
}

// SetReplicas sets the other registry replicas' URLs (from the netmap's
// Registries), tried in order after BaseURL when the one in use fails.
// Invalid URLs and duplicates are left out. The replica in use stays in
// use while it is listed (or is BaseURL).
func (c *Client) SetReplicas(urls []string) {
	out := make([]string, 0, len(urls))
	for _, u := range urls {
		u, ok := normalizeURL(u)
		if !ok || slices.Contains(out, u) {
			continue
		}
		out = append(out, u)
	}
	c.mu.Lock()
	c.replicas = out
	c.mu.Unlock()
}

// Replicas is the list the client turns through: BaseURL, then the other
// replicas.
func (c *Client) Replicas() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.listLocked()
}

// Current is the URL of the replica in use.
func (c *Client) Current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.listLocked()
	return list[c.indexLocked(list)]
}

func (c *Client) listLocked() []string {
	base, ok := normalizeURL(c.BaseURL)
	if !ok {
		base = strings.TrimSuffix(c.BaseURL, "/")
	}
	list := make([]string, 0, 1+len(c.replicas))
	list = append(list, base)
	for _, u := range c.replicas {
		if u != base {
			list = append(list, u)
		}
	}
	return list
}

// indexLocked is the position of the replica in use in list (0 when the
// one in use is no longer listed).
func (c *Client) indexLocked(list []string) int {
	if i := slices.Index(list, c.cur); i >= 0 {
		return i
	}
	return 0
}

// call runs attempt, bounded by wait plus the attempt timeout, against the replica in use and, while it fails with a
// failover error, against each other replica once, in order. The replica
// that answers stays in use; after a failed one the client moves on, so
// the next call starts at the next replica even when this one ran out of
// time. It returns the last attempt's error.
func (c *Client) call(ctx context.Context, wait time.Duration, attempt func(ctx context.Context, baseURL string) error) error {
	c.mu.Lock()
	list := c.listLocked()
	start := c.indexLocked(list)
	c.mu.Unlock()
	timeout := c.AttemptTimeout
	if timeout <= 0 {
		timeout = DefaultAttemptTimeout
	}
	timeout += wait
	var err error
	for i := range list {
		u := list[(start+i)%len(list)]
		actx, cancel := context.WithTimeout(ctx, timeout)
		err = attempt(actx, u)
		timedOut := actx.Err() != nil
		cancel()
		if err != nil && ctx.Err() == nil && timedOut && !IsFailover(err) && !errors.Is(err, ErrNotModified) {
			err = &failoverError{err}
		}
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && err != nil && !errors.Is(err, ErrNotModified) {
				// No answer within the caller's time: the next call
				// starts at the next replica.
				c.failed(u, list)
			}
			return err
		}
		if !IsFailover(err) {
			if err == nil || errors.Is(err, ErrNotModified) {
				c.settle(u)
			}
			return err
		}
		c.failed(u, list)
	}
	return err
}

// settle keeps u in use.
func (c *Client) settle(u string) {
	c.mu.Lock()
	c.cur = u
	c.mu.Unlock()
}

// failed moves the client past u, unless another call moved it already.
func (c *Client) failed(u string, list []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.listLocked()
	if cur[c.indexLocked(cur)] != u {
		return
	}
	i := slices.Index(list, u)
	c.cur = list[(i+1)%len(list)]
}

// normalizeURL returns u as "https://host:port" without a trailing slash,
// or false when it is not an https URL with a host and nothing else.
func normalizeURL(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Path != "" && u.Path != "/") {
		return "", false
	}
	return "https://" + u.Host, true
}
