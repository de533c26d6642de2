// Package connlimit caps the open connections of each source address on a
// listener: a connection from a source that already holds the maximum is
// closed as soon as it is accepted, before any TLS or HTTP work.
//
// Listener.Accept never returns an error for a refused connection; it goes
// on accepting. A connection counts until its Close (the HTTP server
// closes it, or whoever hijacked it does).
package connlimit

import (
	"net"
	"net/netip"
	"sync"
)

// Listener is a net.Listener with a per-source connection cap.
type Listener struct {
	net.Listener
	max      int
	onRefuse func(src netip.Addr)

	mu   sync.Mutex // guards open
	open map[netip.Addr]int
}

// New wraps ln so that each source address holds at most max connections
// (0: no cap). onRefuse, if not nil, hears every refused connection.
func New(ln net.Listener, max int, onRefuse func(src netip.Addr)) *Listener {
	return &Listener{Listener: ln, max: max, onRefuse: onRefuse, open: make(map[netip.Addr]int)}
}

// Accept returns the next connection whose source is under its cap.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.max <= 0 {
			return c, nil
		}
		src := sourceOf(c)
		l.mu.Lock()
		n := l.open[src]
		if n >= l.max {
			l.mu.Unlock()
			c.Close()
			if l.onRefuse != nil {
				l.onRefuse(src)
			}
			continue
		}
		l.open[src] = n + 1
		l.mu.Unlock()
		return &conn{Conn: c, l: l, src: src}, nil
	}
}

// Open returns the number of open connections from src.
func (l *Listener) Open(src netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[src.Unmap()]
}

func (l *Listener) release(src netip.Addr) {
	l.mu.Lock()
	if n := l.open[src] - 1; n > 0 {
		l.open[src] = n
	} else {
		delete(l.open, src)
	}
	l.mu.Unlock()
}

func sourceOf(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	return netip.Addr{}
}

type conn struct {
	net.Conn
	l    *Listener
	src  netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}

// NetConn returns the wrapped connection (as tls.Conn does), for code that
// needs the *net.TCPConn.
func (c *conn) NetConn() net.Conn { return c.Conn }
