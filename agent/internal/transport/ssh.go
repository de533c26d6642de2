package transport

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/sshgw/dialer"
	"github.com/tunnelmesh/tunnelmesh/sshgw/server"
)

// SSHPeer is a peer that accepts the SSH transport.
type SSHPeer struct {
	Addr netip.AddrPort
	// HostKey is the OpenSSH host key when the peer runs OpenSSH (then
	// the channel is direct-tcpip to PacketPort); nil means sshgw with the
	// peer's node key as host key.
	HostKey    *nodekey.PublicKey
	User       string
	PacketPort uint16
}

// SSHConfig configures SSH. Peers also reach this node through its packet
// port (PacketPort), which routes through SSH.
type SSHConfig struct {
	Key  nodekey.PrivateKey
	Bind *Bind
	// Server, if set, is this node's in-agent sshgw server: peers that
	// dialed in are answered on their connection. Its OnPacket must call
	// Bind.Deliver(device.PathSSH, ...) (see ServerOnPacket).
	Server *server.Server
	Logger *slog.Logger
}

// ErrNoSSH is returned by Send for a peer with no SSH connection either way.
var ErrNoSSH = errors.New("transport: no ssh connection to peer")

// SSH is the Sender for device.PathSSH: it dials peers that publish an SSH
// endpoint, lazily (on the first packet the device sends that way, which
// happens when it probes SSH because UDP does not work), and answers peers
// that dialed in through Server.
type SSH struct {
	cfg SSHConfig
	log *slog.Logger

	mu      sync.Mutex // guards the fields below
	ctx     context.Context
	peers   map[nodekey.PublicKey]SSHPeer
	clients map[nodekey.PublicKey]*sshConn
	// ppIn is the newest packet-port connection bound to each peer (see
	// packetport.go).
	ppIn map[nodekey.PublicKey]*Endpoint
	wg   sync.WaitGroup
}

type sshConn struct {
	p       SSHPeer
	c       *dialer.Client
	cancel  context.CancelFunc
	waiting pending // sent while the first dial was in progress
}

// NewSSH returns an SSH transport; it dials once Run runs.
func NewSSH(cfg SSHConfig) *SSH {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &SSH{cfg: cfg, log: cfg.Logger.With("component", "ssh-transport"),
		peers: map[nodekey.PublicKey]SSHPeer{}, clients: map[nodekey.PublicKey]*sshConn{},
		ppIn: map[nodekey.PublicKey]*Endpoint{}}
}

// ServerOnPacket is the server.Config.OnPacket that feeds b.
func ServerOnPacket(b *Bind) func(src nodekey.PublicKey, pkt []byte) {
	return func(src nodekey.PublicKey, pkt []byte) { b.Deliver(device.PathSSH, src, pkt) }
}

// Set applies the peers that accept SSH; connections to peers gone or
// moved are closed.
func (s *SSH) Set(peers map[nodekey.PublicKey]SSHPeer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = peers
	for k, sc := range s.clients {
		if np, ok := peers[k]; !ok || !sameSSHPeer(np, sc.p) {
			sc.cancel()
			delete(s.clients, k)
		}
	}
}

func sameSSHPeer(a, b SSHPeer) bool {
	if (a.HostKey == nil) != (b.HostKey == nil) || (a.HostKey != nil && *a.HostKey != *b.HostKey) {
		return false
	}
	return a.Addr == b.Addr && a.User == b.User && a.PacketPort == b.PacketPort
}

// Has reports whether dst accepts SSH or has dialed in.
func (s *SSH) Has(dst nodekey.PublicKey) bool {
	s.mu.Lock()
	_, ok := s.peers[dst]
	s.mu.Unlock()
	return ok || s.inbound(dst)
}

func (s *SSH) bindPacketPort(k nodekey.PublicKey, ep *Endpoint) {
	s.mu.Lock()
	s.ppIn[k] = ep
	s.mu.Unlock()
	s.log.Info("packet port connection carries peer", "peer", k.ShortID(), "conn", ep.str)
}

func (s *SSH) unbindPacketPort(k nodekey.PublicKey, ep *Endpoint) {
	s.mu.Lock()
	if s.ppIn[k] == ep {
		delete(s.ppIn, k)
	}
	s.mu.Unlock()
}

// packetPortLocked returns the open packet-port connection bound to dst.
func (s *SSH) packetPortLocked(dst nodekey.PublicKey) *ppConn {
	if ep := s.ppIn[dst]; ep != nil && ep.pp.alive() {
		return ep.pp
	}
	return nil
}

func (s *SSH) inbound(dst nodekey.PublicKey) bool {
	s.mu.Lock()
	pp := s.packetPortLocked(dst)
	s.mu.Unlock()
	if pp != nil {
		return true
	}
	if s.cfg.Server == nil {
		return false
	}
	for _, k := range s.cfg.Server.Peers() {
		if k == dst {
			return true
		}
	}
	return false
}

// clientLocked returns the dialer for dst, starting it when dst publishes
// an endpoint and Run is running.
func (s *SSH) clientLocked(dst nodekey.PublicKey) *sshConn {
	if sc := s.clients[dst]; sc != nil {
		return sc
	}
	p, ok := s.peers[dst]
	if !ok || s.ctx == nil || s.ctx.Err() != nil {
		return nil
	}
	dc := dialer.Config{
		Addr: p.Addr.String(), Key: s.cfg.Key, HostKey: dst.SSH(), Mode: dialer.ModeSSHGW,
		OnPacket: func(pkt []byte) { s.cfg.Bind.Deliver(device.PathSSH, dst, pkt) },
		Logger:   s.log.With("peer", dst.ShortID()),
	}
	if p.HostKey != nil {
		dc.HostKey, dc.Mode, dc.User, dc.PacketPort = p.HostKey.SSH(), dialer.ModeDirectTCPIP, p.User, p.PacketPort
	}
	c, err := dialer.NewClient(dc)
	if err != nil {
		s.log.Warn("ssh peer unusable", "peer", dst.ShortID(), "err", err)
		return nil
	}
	ctx, cancel := context.WithCancel(s.ctx)
	sc := &sshConn{p: p, c: c, cancel: cancel}
	s.clients[dst] = sc
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = c.Run(ctx)
	}()
	go func() {
		defer s.wg.Done()
		if c.WaitConnected(ctx) == nil {
			sc.waiting.flush(func(_ nodekey.PublicKey, pkt []byte) error { return c.Send(pkt) })
		}
	}()
	return sc
}

// Run lets SSH dial until ctx ends, then closes its connections and
// returns nil.
func (s *SSH) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	for k, sc := range s.clients {
		sc.cancel()
		delete(s.clients, k)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Send implements Sender: on our connection to dst if it is up, else on
// dst's connection to our server, else on a packet-port connection bound
// to dst.
func (s *SSH) Send(dst nodekey.PublicKey, pkt []byte) error {
	s.mu.Lock()
	sc := s.clientLocked(dst)
	pp := s.packetPortLocked(dst)
	s.mu.Unlock()
	if sc != nil && sc.c.Connected() {
		return sc.c.Send(pkt)
	}
	if s.cfg.Server != nil {
		if err := s.cfg.Server.Send(dst, pkt); err == nil || !errors.Is(err, server.ErrNoPeer) {
			return err
		}
	}
	if pp != nil {
		return pp.c.Send(pkt)
	}
	if sc != nil {
		sc.waiting.hold(dst, pkt)
		return dialer.ErrNotConnected
	}
	return ErrNoSSH
}

// Ready implements Sender.
func (s *SSH) Ready(dst nodekey.PublicKey) bool {
	s.mu.Lock()
	sc := s.clients[dst]
	s.mu.Unlock()
	return (sc != nil && sc.c.Connected()) || s.inbound(dst)
}

// PathName implements Sender: "ssh <addr>" when we dialed, "ssh in" when
// the peer did.
func (s *SSH) PathName(dst nodekey.PublicKey) string {
	s.mu.Lock()
	sc := s.clients[dst]
	s.mu.Unlock()
	if sc != nil && sc.c.Connected() {
		return "ssh " + sc.p.Addr.String()
	}
	return "ssh in"
}
