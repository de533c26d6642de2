// Package client connects a node to a TunnelMesh WebSocket relay: it dials
// the relay (wss://, optionally through an HTTP proxy, with the relay's TLS
// certificate pinned), proves the node key by signing the relay's challenge
// (shared/relaywire), and then sends and receives opaque datagrams addressed
// by node key. Run keeps it connected, reconnecting with backoff.
//
// The client only moves bytes; it knows nothing of TUN devices or tunnels.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/tunnelmesh/tunnelmesh/relay/internal/frames"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/relaywire"
	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
)

// Defaults for Config fields left zero.
const (
	DefaultQueueLen     = 256
	DefaultSocketBuffer = 1 << 20
	DefaultMinBackoff   = 250 * time.Millisecond
	DefaultMaxBackoff   = 15 * time.Second
	DefaultDialTimeout  = 15 * time.Second
	DefaultPingInterval = 25 * time.Second
	DefaultPingTimeout  = 10 * time.Second
	ProxyDirect         = "direct" // Config.Proxy value that disables proxies
)

// Errors returned by Send; check them with errors.Is.
var (
	ErrNotConnected = errors.New("relay not connected")
	ErrQueueFull    = errors.New("relay send queue full")
)

// Config configures a Client.
type Config struct {
	// URL is the relay's WebSocket URL, "wss://host:port/relay" ("ws://" only
	// for tests and loopback setups).
	URL string
	// Key is the node key the client proves it holds.
	Key nodekey.PrivateKey
	// TLSPin, if set, is the tlspin pin of the relay's certificate; only that
	// key is accepted. Empty verifies the relay against the system roots.
	TLSPin string
	// RelayID, if set, is the identity the relay must name in its challenge;
	// a challenge naming another relay is refused before anything is signed.
	RelayID string
	// Proxy selects the HTTP proxy: "" uses the environment (HTTPS_PROXY,
	// HTTP_PROXY, NO_PROXY, as http.ProxyFromEnvironment reads them; loopback
	// relays are never proxied that way), ProxyDirect uses none, and a URL
	// ("http://proxy:3128", "http://user:pass@proxy:3128") uses that proxy
	// (CONNECT) for every relay.
	Proxy string
	// OnPacket receives every datagram from the relay with its source key.
	// It is called from a single goroutine; pkt is valid only during the
	// call. Required.
	OnPacket func(src nodekey.PublicKey, pkt []byte)
	// OnState, if set, is called with true when the client is connected and
	// authenticated and with false when that connection ends.
	OnState func(connected bool)
	// QueueLen is the number of datagrams Send queues before it drops.
	QueueLen int
	// SocketBuffer sets the TCP send and receive buffers.
	SocketBuffer int
	// Backoff between reconnection attempts: exponential from MinBackoff to
	// MaxBackoff, with jitter, reset after a successful handshake.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds one connection attempt including the handshake.
	DialTimeout time.Duration
	// PingInterval and PingTimeout detect a dead relay.
	PingInterval, PingTimeout time.Duration
	// Logger receives connection events. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if u.Scheme != "wss" && u.Scheme != "ws" {
		return fmt.Errorf("url %q: scheme must be wss or ws", c.URL)
	}
	if u.Host == "" {
		return fmt.Errorf("url %q: no host", c.URL)
	}
	if c.Key.IsZero() {
		return errors.New("key: required")
	}
	if c.OnPacket == nil {
		return errors.New("on packet: required")
	}
	if c.RelayID != "" {
		if err := relaywire.ValidRelayID(c.RelayID); err != nil {
			return fmt.Errorf("relay id: %w", err)
		}
	}
	if c.Proxy != "" && c.Proxy != ProxyDirect {
		p, err := url.Parse(c.Proxy)
		if err != nil || p.Host == "" || (p.Scheme != "http" && p.Scheme != "https") {
			return fmt.Errorf("proxy %q: want %q or an http(s)://host:port URL", c.Proxy, ProxyDirect)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.DialTimeout, DefaultDialTimeout)
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.PingTimeout, DefaultPingTimeout)
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.QueueLen <= 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.SocketBuffer <= 0 {
		c.SocketBuffer = DefaultSocketBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Stats are the client's counters since New.
type Stats struct {
	Sent     uint64 // datagrams written to the relay
	Received uint64 // datagrams delivered to OnPacket
	Dropped  uint64 // datagrams Send refused because the queue was full
	Connects uint64 // successful handshakes
	Failures uint64 // failed connection attempts and lost connections
}

// Client is a relay connection that keeps itself up. Create it with New and
// call Run.
type Client struct {
	cfg  Config
	log  *slog.Logger
	http *http.Client

	queue     chan *[]byte
	connected atomic.Bool

	mu      sync.Mutex    // guards upCh
	upCh    chan struct{} // closed while connected; replaced when the connection ends
	running atomic.Bool

	sent, received, dropped, connects, failures atomic.Uint64
}

// New returns a client; it does not connect until Run.
func New(cfg Config) (*Client, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("relay client: %w", err)
	}
	c := &Client{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "relay-client"),
		queue: make(chan *[]byte, cfg.QueueLen),
		upCh:  make(chan struct{}),
	}
	c.http = &http.Client{Transport: c.transport()}
	return c, nil
}

func (c *Client) transport() *http.Transport {
	tlsConf := tlspin.ClientConfig(c.cfg.TLSPin)
	proxy := http.ProxyFromEnvironment
	switch c.cfg.Proxy {
	case "":
	case ProxyDirect:
		proxy = nil
	default:
		u, _ := url.Parse(c.cfg.Proxy) // checked in setDefaults
		proxy = http.ProxyURL(u)
	}
	d := &net.Dialer{Timeout: c.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	size := c.cfg.SocketBuffer
	return &http.Transport{
		Proxy:           proxy,
		TLSClientConfig: tlsConf,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(size)
				_ = tc.SetWriteBuffer(size)
				_ = tc.SetNoDelay(true)
			}
			return conn, nil
		},
		TLSHandshakeTimeout: c.cfg.DialTimeout,
		// One WebSocket per client: no idle pool.
		DisableKeepAlives: true,
		ForceAttemptHTTP2: false,
	}
}

// Send queues pkt for dst and returns at once. It copies pkt. It fails with
// ErrNotConnected while the client has no authenticated connection and with
// ErrQueueFull (counted in Stats.Dropped) when the queue is full.
func (c *Client) Send(dst nodekey.PublicKey, pkt []byte) error {
	if err := relaywire.CheckPayload(pkt); err != nil {
		return fmt.Errorf("relay send: %w", err)
	}
	if !c.connected.Load() {
		return ErrNotConnected
	}
	b := frames.NewPacket(dst, pkt)
	select {
	case c.queue <- b:
		return nil
	default:
		frames.Put(b)
		c.dropped.Add(1)
		return ErrQueueFull
	}
}

// Connected reports whether the client has an authenticated connection.
func (c *Client) Connected() bool { return c.connected.Load() }

// WaitConnected blocks until the client is connected or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		ch := c.upCh
		c.mu.Unlock()
		select {
		case <-ch:
			if c.connected.Load() {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Sent: c.sent.Load(), Received: c.received.Load(), Dropped: c.dropped.Load(),
		Connects: c.connects.Load(), Failures: c.failures.Load(),
	}
}

// Run connects to the relay and keeps reconnecting with backoff until ctx
// ends; then it closes the connection and returns nil. Run may be called
// only once at a time.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("relay client: already running")
	}
	defer c.running.Store(false)
	backoff := c.cfg.MinBackoff
	for ctx.Err() == nil {
		ws, err := c.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			c.failures.Add(1)
			c.log.Warn("relay connect failed", "url", c.cfg.URL, "err", err, "retry_in", backoff)
		} else {
			backoff = c.cfg.MinBackoff
			c.connects.Add(1)
			err := c.serve(ctx, ws)
			if ctx.Err() != nil {
				break
			}
			c.failures.Add(1)
			c.log.Warn("relay connection lost", "url", c.cfg.URL, "err", err)
		}
		// Full jitter over the upper half keeps restarted relays from a stampede.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
	return nil
}

// dial opens the WebSocket and runs the handshake.
func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, c.cfg.URL, &websocket.DialOptions{
		HTTPClient:      c.http,
		CompressionMode: websocket.CompressionDisabled,
	})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dial relay: %w", err)
	}
	ws.SetReadLimit(relaywire.MaxMessageLen)
	if err := c.handshake(ctx, ws); err != nil {
		ws.CloseNow()
		return nil, err
	}
	return ws, nil
}

func (c *Client) handshake(ctx context.Context, ws *websocket.Conn) error {
	typ, chal, err := ws.Read(ctx)
	if err != nil {
		return fmt.Errorf("read challenge: %w", err)
	}
	if typ != websocket.MessageBinary || len(chal) > relaywire.MaxChallengeLen {
		return errors.New("read challenge: not a challenge message")
	}
	ch, err := relaywire.ParseChallenge(chal)
	if err != nil {
		return err
	}
	if c.cfg.RelayID != "" && ch.RelayID != c.cfg.RelayID {
		return fmt.Errorf("relay handshake: relay calls itself %q, want %q", ch.RelayID, c.cfg.RelayID)
	}
	auth := relaywire.SignAuth(c.cfg.Key, chal)
	if err := ws.Write(ctx, websocket.MessageBinary, auth.Append(nil)); err != nil {
		return fmt.Errorf("send auth: %w", err)
	}
	typ, msg, err := ws.Read(ctx)
	if err != nil {
		return fmt.Errorf("relay refused auth: %w", err)
	}
	if typ != websocket.MessageBinary {
		return errors.New("read ready: not a binary message")
	}
	return relaywire.ParseReady(msg)
}

// serve runs one authenticated connection until it fails or ctx ends.
func (c *Client) serve(ctx context.Context, ws *websocket.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.setConnected(true)
	c.log.Info("relay connected", "url", c.cfg.URL)
	defer c.setConnected(false)

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.writeLoop(ctx, ws) }()
	go func() { defer wg.Done(); c.pingLoop(ctx, ws) }()
	readDone := make(chan struct{})
	go func() {
		// A cancelled Run says goodbye with a close frame; after a read
		// error there is nobody to say it to.
		defer wg.Done()
		select {
		case <-ctx.Done():
			ws.Close(websocket.StatusNormalClosure, "")
		case <-readDone:
		}
	}()
	err := c.readLoop(ws)
	close(readDone)
	cancel()
	ws.CloseNow()
	wg.Wait()
	return err
}

func (c *Client) setConnected(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connected.Load() == up {
		return
	}
	c.connected.Store(up)
	if up {
		close(c.upCh)
	} else {
		c.upCh = make(chan struct{})
	}
	if c.cfg.OnState != nil {
		c.cfg.OnState(up)
	}
}

func (c *Client) readLoop(ws *websocket.Conn) error {
	buf := make([]byte, relaywire.MaxMessageLen)
	for {
		typ, r, err := ws.Reader(context.Background())
		if err != nil {
			return err
		}
		n, err := frames.ReadMessage(r, buf)
		if err != nil {
			return err
		}
		if typ != websocket.MessageBinary || n == 0 {
			return errors.New("relay sent a non-packet message")
		}
		msg := buf[:n]
		switch msg[0] {
		case relaywire.TypePacket:
			src, pkt, err := relaywire.ParsePacket(msg)
			if err != nil {
				return err
			}
			c.received.Add(1)
			c.cfg.OnPacket(src, pkt)
		case relaywire.TypeBatch:
			br, err := relaywire.ParseBatch(msg)
			if err != nil {
				return err
			}
			for {
				src, pkt, ok, err := br.Next()
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				c.received.Add(1)
				c.cfg.OnPacket(src, pkt)
			}
		default:
			return fmt.Errorf("relay sent message type 0x%02x", msg[0])
		}
	}
}

func (c *Client) writeLoop(ctx context.Context, ws *websocket.Conn) {
	co := frames.NewCoalescer()
	write := func(msg []byte) error { return ws.Write(context.Background(), websocket.MessageBinary, msg) }
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-c.queue:
			n, _, err := co.Drain(b, c.queue, write)
			c.sent.Add(uint64(n))
			if err != nil {
				ws.CloseNow()
				return
			}
		}
	}
}

func (c *Client) pingLoop(ctx context.Context, ws *websocket.Conn) {
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, c.cfg.PingTimeout)
			err := ws.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				ws.CloseNow()
				return
			}
		}
	}
}
