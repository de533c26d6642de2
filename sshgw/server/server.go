// Package server is the SSH transport endpoint of a TunnelMesh node: an SSH
// server (github.com/gliderlabs/ssh) whose host key is the node key, that
// accepts only the mesh nodes in its allow-set and offers them exactly one
// thing: the "tunnelmesh-packets@tunnelmesh" channel, which carries tunnel
// packets framed as sshgw/frame documents (2-byte big-endian length, then
// the packet).
//
// No shell, no exec, no subsystems, no port forwarding, no agent forwarding:
// every other channel type and global request is refused.
//
// The allow-set follows the netmap: the caller passes the peers' keys to
// SetAllowed on every change. A key that leaves the set is refused at once,
// and every connection that authenticated (or was authenticating) with it is
// closed.
//
// Packets go to the local agent in one of two ways:
//
//   - inside the agent, Config.OnPacket receives each packet with the peer's
//     key, and Server.Send sends packets back to a peer;
//   - standalone (tunnelmesh-sshgw next to the agent), Config.ForwardTo names
//     the agent's packet port (sshgw/packetport): each packet channel gets its
//     own TCP connection there, and the framed bytes are copied both ways.
package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/link"
)

// ChannelType is the SSH channel type that carries tunnel packets.
const ChannelType = "tunnelmesh-packets@tunnelmesh"

// User is the SSH user name dialers present. The server ignores it (the key
// is the identity); it is what an OpenSSH account for the mesh would be
// called.
const User = "tunnelmesh"

// extNodeKey is the Permissions extension holding the authenticated key.
const extNodeKey = "tunnelmesh-node-key"

// Errors returned by Send; check them with errors.Is.
var (
	ErrNoPeer    = errors.New("peer has no packet channel")
	ErrQueueFull = link.ErrQueueFull
	ErrClosed    = errors.New("ssh server closed")
)

// Config configures a Server. Exactly one of OnPacket and ForwardTo is set.
type Config struct {
	// HostKey is the node key; the server presents it as its ed25519 host
	// key, so peers verify it against the node key in their netmap.
	HostKey nodekey.PrivateKey
	// OnPacket receives each packet with its sender's key (in-agent mode).
	// It is called from that channel's goroutine; pkt is valid only during
	// the call.
	OnPacket func(src nodekey.PublicKey, pkt []byte)
	// ForwardTo is the address of the agent's packet port (standalone mode).
	ForwardTo string
	// QueueLen is each channel's send queue length (in-agent mode).
	QueueLen int
	// IdleTimeout closes a connection that has sent and received nothing
	// for this long (dialers send keepalives every 15 s). Default 60 s.
	IdleTimeout time.Duration
	// Logger receives connection events. Default slog.Default().
	Logger *slog.Logger
}

// Server is the SSH endpoint. Create it with New, call SetAllowed, then
// Serve.
type Server struct {
	cfg Config
	log *slog.Logger
	ssh *ssh.Server

	mu      sync.Mutex // guards the fields below
	allowed map[nodekey.PublicKey]struct{}
	conns   map[*trackedConn]struct{}
	peers   map[nodekey.PublicKey]*link.Link // newest packet channel per peer (in-agent mode)
	closed  bool

	wg sync.WaitGroup // channel handlers
}

// trackedConn is an accepted TCP connection with the keys that passed the
// allow check on it.
type trackedConn struct {
	net.Conn
	s *Server

	mu   sync.Mutex // guards keys
	keys []nodekey.PublicKey

	closeOnce sync.Once
}

func (tc *trackedConn) addKey(k nodekey.PublicKey) {
	tc.mu.Lock()
	tc.keys = append(tc.keys, k)
	tc.mu.Unlock()
}

// usesKeyNotIn reports whether any key that passed on tc is not in set.
func (tc *trackedConn) usesKeyNotIn(set map[nodekey.PublicKey]struct{}) bool {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, k := range tc.keys {
		if _, ok := set[k]; !ok {
			return true
		}
	}
	return false
}

func (tc *trackedConn) Close() error {
	var err error
	tc.closeOnce.Do(func() {
		err = tc.Conn.Close()
		tc.s.mu.Lock()
		delete(tc.s.conns, tc)
		tc.s.mu.Unlock()
	})
	return err
}

type ctxKey struct{}

// New returns a server with an empty allow-set.
func New(cfg Config) (*Server, error) {
	if cfg.HostKey.IsZero() {
		return nil, errors.New("ssh server: host key: required")
	}
	if (cfg.OnPacket == nil) == (cfg.ForwardTo == "") {
		return nil, errors.New("ssh server: set exactly one of on packet and forward to")
	}
	if cfg.ForwardTo != "" {
		if _, _, err := net.SplitHostPort(cfg.ForwardTo); err != nil {
			return nil, fmt.Errorf("ssh server: forward to %q: want host:port", cfg.ForwardTo)
		}
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	signer, err := cfg.HostKey.Signer()
	if err != nil {
		return nil, fmt.Errorf("ssh server: %w", err)
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "sshgw"),
		allowed: make(map[nodekey.PublicKey]struct{}),
		conns:   make(map[*trackedConn]struct{}),
		peers:   make(map[nodekey.PublicKey]*link.Link),
	}
	s.ssh = &ssh.Server{
		HostSigners: []ssh.Signer{signer},
		Version:     "TunnelMesh",
		IdleTimeout: cfg.IdleTimeout,
		// Non-nil empty maps: gliderlabs fills nil ones with its defaults
		// (session, direct-tcpip, tcpip-forward...).
		ChannelHandlers:   map[string]ssh.ChannelHandler{ChannelType: s.handleChannel},
		RequestHandlers:   map[string]ssh.RequestHandler{},
		SubsystemHandlers: map[string]ssh.SubsystemHandler{},
		ConnCallback:      s.track,
		// Authentication is the PublicKeyCallback of ServerConfigCallback,
		// which records the authenticated key in the connection's
		// permissions (gliderlabs' own PublicKeyHandler shares one
		// Permissions value among all keys tried on a connection). A
		// password handler that refuses everything keeps gliderlabs from
		// turning on NoClientAuth when it sees no handler of its own.
		ServerConfigCallback: s.sshConfig,
		PasswordHandler:      func(ssh.Context, string) bool { return false },
		ConnectionFailedCallback: func(c net.Conn, err error) {
			s.log.Debug("ssh handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		},
	}
	return s, nil
}

// SetAllowed replaces the set of node keys that may connect. Connections
// that authenticated with a key no longer in the set are closed at once.
func (s *Server) SetAllowed(keys []nodekey.PublicKey) {
	set := make(map[nodekey.PublicKey]struct{}, len(keys))
	for _, k := range keys {
		set[k] = struct{}{}
	}
	s.mu.Lock()
	s.allowed = set
	var cut []*trackedConn
	for tc := range s.conns {
		if tc.usesKeyNotIn(set) {
			cut = append(cut, tc)
		}
	}
	s.mu.Unlock()
	for _, tc := range cut {
		s.log.Info("closing ssh connection of a removed node", "remote", tc.RemoteAddr().String())
		tc.Close()
	}
}

func (s *Server) isAllowed(k nodekey.PublicKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.allowed[k]
	return ok
}

func (s *Server) track(ctx ssh.Context, nc net.Conn) net.Conn {
	tc := &trackedConn{Conn: nc, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil // gliderlabs closes nc
	}
	s.conns[tc] = struct{}{}
	ctx.SetValue(ctxKey{}, tc)
	return tc
}

func (s *Server) sshConfig(ctx ssh.Context) *gossh.ServerConfig {
	tc, _ := ctx.Value(ctxKey{}).(*trackedConn)
	return &gossh.ServerConfig{
		MaxAuthTries: 6,
		PublicKeyCallback: func(meta gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
			if key.Type() != gossh.KeyAlgoED25519 {
				return nil, errors.New("only ed25519 node keys are accepted")
			}
			nk, err := nodekey.PublicKeyFromSSH(key)
			if err != nil || !s.isAllowed(nk) {
				return nil, errors.New("key not in the mesh")
			}
			if tc != nil {
				tc.addKey(nk)
			}
			return &gossh.Permissions{Extensions: map[string]string{extNodeKey: hex.EncodeToString(nk[:])}}, nil
		},
	}
}

// peerKey returns the key conn authenticated with.
func peerKey(conn *gossh.ServerConn) (nodekey.PublicKey, bool) {
	var k nodekey.PublicKey
	if conn.Permissions == nil {
		return k, false
	}
	b, err := hex.DecodeString(conn.Permissions.Extensions[extNodeKey])
	if err != nil || len(b) != len(k) {
		return k, false
	}
	copy(k[:], b)
	return k, true
}

func (s *Server) handleChannel(_ *ssh.Server, conn *gossh.ServerConn, nch gossh.NewChannel, ctx ssh.Context) {
	key, ok := peerKey(conn)
	if !ok || !s.isAllowed(key) {
		nch.Reject(gossh.Prohibited, "node not in the mesh")
		conn.Close()
		return
	}
	if len(nch.ExtraData()) != 0 {
		nch.Reject(gossh.ConnectionFailed, "unexpected channel data")
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nch.Reject(gossh.ResourceShortage, "shutting down")
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); gossh.DiscardRequests(reqs) }()
	log := s.log.With("node", key.ShortID(), "remote", conn.RemoteAddr().String())
	log.Info("packet channel open")
	if s.cfg.ForwardTo != "" {
		err = s.forward(ch)
	} else {
		err = s.serveChannel(key, ch)
	}
	log.Info("packet channel closed", "err", err)
}

// serveChannel runs a packet channel in in-agent mode.
func (s *Server) serveChannel(key nodekey.PublicKey, ch gossh.Channel) error {
	l := link.New(ch, s.cfg.QueueLen)
	s.mu.Lock()
	s.peers[key] = l
	s.mu.Unlock()
	err := l.Run(func(p []byte) { s.cfg.OnPacket(key, p) })
	s.mu.Lock()
	if s.peers[key] == l {
		delete(s.peers, key)
	}
	s.mu.Unlock()
	return err
}

// forward copies a packet channel to and from a new connection to the
// agent's packet port (standalone mode). Both ends speak the same framing;
// the packet port checks it.
func (s *Server) forward(ch gossh.Channel) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	pc, err := d.Dial("tcp", s.cfg.ForwardTo)
	if err != nil {
		ch.Close()
		return fmt.Errorf("dial packet port: %w", err)
	}
	// When either side ends, both are closed: a packet port that went away
	// (agent restart) must not leave the peer's channel half open.
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(ch, pc); errc <- err }()
	go func() { _, err := io.Copy(pc, ch); errc <- err }()
	err = <-errc
	pc.Close()
	ch.Close()
	<-errc
	return err
}

// Send queues pkt for the peer with key on its newest packet channel
// (in-agent mode). It never blocks.
func (s *Server) Send(dst nodekey.PublicKey, pkt []byte) error {
	s.mu.Lock()
	l := s.peers[dst]
	s.mu.Unlock()
	if l == nil {
		return ErrNoPeer
	}
	return l.Send(pkt)
}

// Peers returns the keys of peers with an open packet channel.
func (s *Server) Peers() []nodekey.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]nodekey.PublicKey, 0, len(s.peers))
	for k := range s.peers {
		out = append(out, k)
	}
	return out
}

// Serve accepts SSH connections on l until Close. It returns nil after
// Close.
func (s *Server) Serve(l net.Listener) error {
	err := s.ssh.Serve(l)
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the listeners, closes every connection and waits for the
// channel handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*trackedConn, 0, len(s.conns))
	for tc := range s.conns {
		conns = append(conns, tc)
	}
	s.mu.Unlock()
	err := s.ssh.Close()
	for _, tc := range conns {
		tc.Close()
	}
	s.wg.Wait()
	if errors.Is(err, ssh.ErrServerClosed) {
		err = nil
	}
	return err
}

// Shutdown is Close bounded by ctx: it returns ctx's error if the handlers
// have not returned in time.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
