// Package packetport is the agent's local packet port: a TCP listener on a
// loopback address that speaks the SSH transport's framing (sshgw/frame) on
// every connection. It is where tunnel packets arrive when a peer reaches
// this node through an existing OpenSSH server (a direct-tcpip channel to
// 127.0.0.1:PORT, authorised by the peer's node key in authorized_keys), and
// where a standalone tunnelmesh-sshgw hands over the packets of each peer.
//
// Each accepted connection is one peer link. The port does not know which
// peer it is: the packets are the tunnel's own (Noise) datagrams, and the
// agent recognises their sender from them, as it does on UDP. It answers on
// the same Conn.
package packetport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/link"
)

// Errors returned by Conn.Send; check them with errors.Is.
var (
	ErrQueueFull = link.ErrQueueFull
	ErrClosed    = link.ErrClosed
)

// Stats are a connection's counters: packets sent, received, and refused
// by Send because the queue was full.
type Stats = link.Stats

// Config configures a Listener.
type Config struct {
	// Addr is the address to listen on; it must be a loopback address
	// (anything on the machine could otherwise inject packets). Default
	// "127.0.0.1:0" (a free port).
	Addr string
	// OnPacket receives every packet with the connection it came on. It is
	// called from that connection's goroutine; pkt is valid only during the
	// call. Required.
	OnPacket func(c *Conn, pkt []byte)
	// OnConn, if set, is called when a connection opens (up) and ends.
	OnConn func(c *Conn, up bool)
	// QueueLen is each connection's send queue length. Default 512.
	QueueLen int
	// MaxConns bounds the simultaneous connections; more are refused.
	// Default 1024.
	MaxConns int
	// Logger receives connection events. Default slog.Default().
	Logger *slog.Logger
}

// Listener is a packet port. Create it with Listen and call Serve.
type Listener struct {
	cfg Config
	log *slog.Logger
	ln  net.Listener

	mu     sync.Mutex // guards the fields below
	conns  map[*Conn]struct{}
	closed bool

	wg     sync.WaitGroup
	nextID atomic.Uint64
}

// Conn is one connection to the packet port.
type Conn struct {
	id     uint64
	remote netip.AddrPort
	link   *link.Link
}

// ID is a number unique among the listener's connections.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr is the connection's source address (a loopback address).
func (c *Conn) RemoteAddr() netip.AddrPort { return c.remote }

// Send queues pkt (copied) for this connection without blocking.
func (c *Conn) Send(pkt []byte) error { return c.link.Send(pkt) }

// Close closes the connection.
func (c *Conn) Close() error { return c.link.Close() }

// Done is closed when the connection has closed.
func (c *Conn) Done() <-chan struct{} { return c.link.Done() }

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats { return c.link.Stats() }

// Listen binds the packet port.
func Listen(cfg Config) (*Listener, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.OnPacket == nil {
		return nil, errors.New("packet port: on packet: required")
	}
	ap, err := netip.ParseAddrPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("packet port: addr %q: want ip:port", cfg.Addr)
	}
	if !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("packet port: addr %q: must be a loopback address", cfg.Addr)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", ap.String())
	if err != nil {
		return nil, fmt.Errorf("packet port: %w", err)
	}
	return &Listener{cfg: cfg, log: cfg.Logger.With("component", "packetport"), ln: ln, conns: make(map[*Conn]struct{})}, nil
}

// Addr returns the bound address.
func (l *Listener) Addr() netip.AddrPort {
	return l.ln.Addr().(*net.TCPAddr).AddrPort()
}

// Port returns the bound port.
func (l *Listener) Port() uint16 { return l.Addr().Port() }

// Serve accepts connections until ctx ends or Close is called; then it
// closes every connection, waits for their goroutines and returns nil.
func (l *Listener) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("packet port accept: %w", err)
		}
		l.handle(nc)
	}
}

func (l *Listener) handle(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &Conn{id: l.nextID.Add(1), link: link.New(nc, l.cfg.QueueLen)}
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.remote = ta.AddrPort()
	}
	l.mu.Lock()
	if l.closed || len(l.conns) >= l.cfg.MaxConns {
		l.mu.Unlock()
		l.log.Warn("packet port connection refused", "remote", c.remote, "conns", l.cfg.MaxConns)
		nc.Close()
		return
	}
	l.conns[c] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		if l.cfg.OnConn != nil {
			l.cfg.OnConn(c, true)
		}
		err := c.link.Run(func(p []byte) { l.cfg.OnPacket(c, p) })
		if err != nil {
			l.log.Debug("packet port connection ended", "id", c.id, "err", err)
		}
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		if l.cfg.OnConn != nil {
			l.cfg.OnConn(c, false)
		}
	}()
}

// Conns returns the open connections.
func (l *Listener) Conns() []*Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Conn, 0, len(l.conns))
	for c := range l.conns {
		out = append(out, c)
	}
	return out
}

// Close stops accepting, closes every connection and waits for their
// goroutines. It is safe to call more than once.
func (l *Listener) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		l.ln.Close()
	}
	conns := make([]*Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	l.wg.Wait()
	return nil
}
