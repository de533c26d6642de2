// Package server is the TunnelMesh WebSocket relay: nodes that cannot reach
// each other directly send already-encrypted datagrams addressed by the
// destination's node key, and the relay forwards them to that node's
// connection, rewriting the address to the source key (shared/relaywire).
//
// A Server is an http.Handler: the standalone tunnelmesh-relay binary serves
// it, and the coordinator mounts it at api.PathRelay.
//
// Authentication: the relay opens every connection with a fresh challenge
// (random nonce, relay time, relay identity); the node answers with an
// ed25519 signature by its node key over the whole challenge. The answer is
// bound to that connection's nonce and to this relay's identity, so neither
// the relay nor anyone watching can replay it. Keys that are not valid
// points or are of small order (all zero, the identity, the other torsion
// points) are refused before the signature is checked: anyone can make
// signatures that verify under them. After that, Config.Authorize
// decides whether the proven key may use the relay: the coordinator passes a
// function that checks its node table; a standalone relay may pass AllowList
// or leave it nil, which admits every node that proves its key (such a relay
// is an open forwarder of ciphertext between key holders; the tunnels stay end
// to end encrypted either way).
//
// Forwarding never blocks a sender: every connection has a bounded send queue,
// and a frame for a full queue is dropped and counted (reason "queue_full"),
// so one slow node stalls nobody else. The relay keeps no state beyond its
// live connections; a restarted relay simply accepts the nodes as they
// reconnect.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/relaywire"
)

// Defaults for Config fields left zero.
const (
	DefaultQueueLen         = 256
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPingInterval     = 30 * time.Second
	DefaultPingTimeout      = 15 * time.Second
)

// Close reasons sent to nodes (WebSocket status 1008 unless noted).
const (
	reasonAuthFailed   = "authentication failed"
	reasonUnauthorized = "node not authorized"
	reasonReplaced     = "replaced by a newer connection"
	reasonShutdown     = "relay shutting down" // status 1001
	reasonProtocol     = "protocol error"
)

// Config configures a Server.
type Config struct {
	// ID is the relay's identity, carried in every challenge and covered by
	// the nodes' signatures: 1..255 bytes. Default: the host name.
	ID string
	// Authorize reports whether a node that proved it holds key may use the
	// relay. nil admits every authenticated node. It must be fast and safe
	// for concurrent use; Recheck runs it again over connected nodes.
	Authorize func(key nodekey.PublicKey) bool
	// QueueLen is the number of frames each connection's send queue holds
	// before frames for it are dropped. Default DefaultQueueLen.
	QueueLen int
	// HandshakeTimeout bounds the time from accepting the WebSocket to a
	// valid answer to the challenge. Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// PingInterval is how often the relay pings each node; a node that does
	// not answer within PingTimeout is disconnected. Defaults
	// DefaultPingInterval and DefaultPingTimeout.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// Registerer, if set, receives the relay's Prometheus metrics.
	Registerer prometheus.Registerer
	// Logger receives connection events. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.ID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "tunnelmesh-relay"
		}
		c.ID = h
	}
	if err := relaywire.ValidRelayID(c.ID); err != nil {
		return fmt.Errorf("relay id: %w", err)
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.QueueLen < 1 || c.QueueLen > 1<<16 {
		return fmt.Errorf("queue length %d: want 1..65536", c.QueueLen)
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.HandshakeTimeout < 0 || c.PingInterval < 0 || c.PingTimeout < 0 {
		return errors.New("timeouts must not be negative")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Server is the relay. Create it with New; it is an http.Handler.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu     sync.RWMutex // guards the fields below
	conns  map[nodekey.PublicKey]*conn
	closed bool

	wg sync.WaitGroup // every connection's goroutines
}

// New returns a relay server. It registers its metrics with cfg.Registerer.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("relay server: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("relay server: %w", err)
	}
	return &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "relay"),
		metrics: m,
		conns:   make(map[nodekey.PublicKey]*conn),
	}, nil
}

// ID returns the relay identity the server puts in its challenges.
func (s *Server) ID() string { return s.cfg.ID }

// AllowList returns an Authorize function that admits exactly keys.
func AllowList(keys []nodekey.PublicKey) func(nodekey.PublicKey) bool {
	set := make(map[nodekey.PublicKey]struct{}, len(keys))
	for _, k := range keys {
		set[k] = struct{}{}
	}
	return func(k nodekey.PublicKey) bool { _, ok := set[k]; return ok }
}

// ServeHTTP accepts a node's WebSocket, authenticates it and forwards its
// frames until the connection ends. It blocks for the connection's lifetime.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	closed := s.closed
	if !closed {
		s.wg.Add(1)
	}
	s.mu.RUnlock()
	if closed {
		http.Error(w, "relay shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		CompressionMode: websocket.CompressionDisabled,
		// Nodes are not browsers; a browser page could not answer the
		// challenge without the node key anyway.
		InsecureSkipVerify: true,
	})
	if err != nil {
		s.metrics.handshakes.WithLabelValues("bad_request").Inc()
		return // Accept wrote the HTTP error
	}
	ws.SetReadLimit(relaywire.MaxMessageLen)
	key, err := s.handshake(r.Context(), ws)
	if err != nil {
		s.log.Debug("relay handshake failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	c := newConn(s, ws, key)
	if !s.register(c) {
		c.ws.Close(websocket.StatusGoingAway, reasonShutdown)
		return
	}
	// Ready goes out after registration, so a node that has it is routable.
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.HandshakeTimeout)
	err = ws.Write(ctx, websocket.MessageBinary, relaywire.AppendReady(nil))
	cancel()
	if err != nil {
		s.metrics.handshakes.WithLabelValues("io_error").Inc()
		ws.CloseNow()
		s.unregister(c)
		return
	}
	s.metrics.handshakes.WithLabelValues("ok").Inc()
	s.log.Info("node connected", "node", key.ShortID(), "remote", r.RemoteAddr)
	c.run()
	s.unregister(c)
	s.log.Info("node disconnected", "node", key.ShortID(), "reason", c.reason())
}

// handshake sends a challenge and checks the answer (ServeHTTP sends the
// ready message after registering the node). On failure it closes ws
// and counts the result.
func (s *Server) handshake(ctx context.Context, ws *websocket.Conn) (nodekey.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	fail := func(result, reason string, err error) (nodekey.PublicKey, error) {
		s.metrics.handshakes.WithLabelValues(result).Inc()
		ws.Close(websocket.StatusPolicyViolation, reason)
		return nodekey.PublicKey{}, err
	}
	ch := relaywire.Challenge{Time: time.Now(), RelayID: s.cfg.ID}
	if _, err := rand.Read(ch.Nonce[:]); err != nil {
		return fail("error", reasonProtocol, fmt.Errorf("challenge nonce: %w", err))
	}
	chal, err := ch.Append(make([]byte, 0, relaywire.MaxChallengeLen))
	if err != nil {
		return fail("error", reasonProtocol, err)
	}
	if err := ws.Write(ctx, websocket.MessageBinary, chal); err != nil {
		s.metrics.handshakes.WithLabelValues("io_error").Inc()
		ws.CloseNow()
		return nodekey.PublicKey{}, fmt.Errorf("send challenge: %w", err)
	}
	typ, msg, err := ws.Read(ctx)
	if err != nil {
		s.metrics.handshakes.WithLabelValues("io_error").Inc()
		ws.CloseNow()
		return nodekey.PublicKey{}, fmt.Errorf("read auth: %w", err)
	}
	if typ != websocket.MessageBinary {
		return fail("bad_auth", reasonProtocol, errors.New("auth: not a binary message"))
	}
	auth, err := relaywire.ParseAuth(msg)
	if err != nil {
		return fail("bad_auth", reasonProtocol, err)
	}
	if err := auth.Key.Validate(); err != nil {
		// Small-order keys sign without a private key (relaywire.Auth.Verify).
		return fail("bad_auth", reasonAuthFailed, fmt.Errorf("auth: node key %s: %w", auth.Key.ShortID(), err))
	}
	if !auth.Verify(chal) {
		return fail("bad_auth", reasonAuthFailed, errors.New("auth: signature does not verify"))
	}
	if s.cfg.Authorize != nil && !s.cfg.Authorize(auth.Key) {
		return fail("unauthorized", reasonUnauthorized, fmt.Errorf("auth: node %s not authorized", auth.Key.ShortID()))
	}
	return auth.Key, nil
}

// register makes c the connection for its key, replacing an older one.
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	old := s.conns[c.key]
	s.conns[c.key] = c
	s.mu.Unlock()
	s.metrics.connections.Inc()
	if old != nil {
		old.kick(websocket.StatusPolicyViolation, reasonReplaced)
	}
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	if s.conns[c.key] == c {
		delete(s.conns, c.key)
	}
	s.mu.Unlock()
	s.metrics.connections.Dec()
}

// lookup returns the connection of key, or nil.
func (s *Server) lookup(key nodekey.PublicKey) *conn {
	s.mu.RLock()
	c := s.conns[key]
	s.mu.RUnlock()
	return c
}

// Connected reports whether a node with key is connected.
func (s *Server) Connected(key nodekey.PublicKey) bool { return s.lookup(key) != nil }

// NumConns returns the number of connected nodes.
func (s *Server) NumConns() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.conns)
}

// Recheck runs Config.Authorize again over every connected node and
// disconnects those it now refuses (call it when the node table changes). It
// returns how many it disconnected.
func (s *Server) Recheck() int {
	if s.cfg.Authorize == nil {
		return 0
	}
	s.mu.RLock()
	var refused []*conn
	for k, c := range s.conns {
		if !s.cfg.Authorize(k) {
			refused = append(refused, c)
		}
	}
	s.mu.RUnlock()
	for _, c := range refused {
		c.kick(websocket.StatusPolicyViolation, reasonUnauthorized)
	}
	return len(refused)
}

// Close disconnects every node, refuses new connections (HTTP 503) and waits
// until all connection goroutines have returned.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.kick(websocket.StatusGoingAway, reasonShutdown)
	}
	s.wg.Wait()
	return nil
}
