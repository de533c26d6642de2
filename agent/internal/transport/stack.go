package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	sshserver "github.com/tunnelmesh/tunnelmesh/sshgw/server"
)

// StackConfig configures a Stack.
type StackConfig struct {
	Key nodekey.PrivateKey
	// UDP is the inner UDP bind (device.NewBind).
	UDP device.Bind
	// SSHListen, if set, runs the SSH transport's server (sshgw in-agent
	// mode) on this TCP address; peers in the netmap may connect.
	SSHListen string
	// PacketPort, if set, serves the packet port (sshgw/packetport) on this
	// loopback ip:port: peers coming through this node's OpenSSH server or
	// a standalone tunnelmesh-sshgw arrive there (see packetport.go).
	PacketPort string
	// RelayProxy is relay client.Config.Proxy.
	RelayProxy string
	Logger     *slog.Logger
}

// Config is the netmap's part for the transports: the relays and how to
// reach each peer on a transport other than UDP.
type Config struct {
	// Relays are the mesh's relays, each with its URL (the coordinator's
	// filled in).
	Relays []api.Relay
	// HomeRelay is this node's home relay, where peers reach it.
	HomeRelay string
	// Peers are the peers the transports carry, by node key; SSH servers
	// of this node accept these keys only.
	Peers map[nodekey.PublicKey]Peer
}

// Peer is what the transports need of one peer.
type Peer struct {
	// HomeRelay is the relay where the peer is reached.
	HomeRelay string
	// SSH is how to dial the peer over SSH; a zero Addr means the peer
	// publishes no SSH endpoint this node can dial.
	SSH SSHPeer
}

// Stack is a node's transports: the bind the device uses, the relay
// connections, the SSH dialer and, with SSHListen, the in-agent SSH server.
// The device owns and closes the Bind; Close stops the rest.
type Stack struct {
	Bind   *Bind
	Relays *Relays
	SSH    *SSH
	Server *sshserver.Server // nil without SSHListen
	Port   *PacketPort       // nil without PacketPort

	cfg     StackConfig
	sshAddr netip.AddrPort
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewStack starts the transports.
func NewStack(cfg StackConfig) (*Stack, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Stack{cfg: cfg, Bind: NewBind(cfg.UDP)}
	var ln net.Listener
	if cfg.SSHListen != "" {
		var err error
		s.Server, err = sshserver.New(sshserver.Config{HostKey: cfg.Key, OnPacket: ServerOnPacket(s.Bind), Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("ssh transport server: %w", err)
		}
		s.Server.SetAllowed(nil)
		if ln, err = net.Listen("tcp", cfg.SSHListen); err != nil {
			return nil, fmt.Errorf("ssh transport listen: %w", err)
		}
		s.sshAddr = ln.Addr().(*net.TCPAddr).AddrPort()
	}
	s.Relays = NewRelays(RelaysConfig{Key: cfg.Key, Bind: s.Bind, Proxy: cfg.RelayProxy, Logger: cfg.Logger})
	s.SSH = NewSSH(SSHConfig{Key: cfg.Key, Bind: s.Bind, Server: s.Server, Logger: cfg.Logger})
	if cfg.PacketPort != "" {
		var err error
		if s.Port, err = ListenPacketPort(cfg.PacketPort, s.Bind, s.SSH, cfg.Logger); err != nil {
			if ln != nil {
				ln.Close()
			}
			return nil, err
		}
	}
	s.Bind.SetSender(device.PathRelay, s.Relays)
	s.Bind.SetSender(device.PathSSH, s.SSH)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.Relays.Run(ctx) }()
	go func() { defer s.wg.Done(); s.SSH.Run(ctx) }()
	if s.Port != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.Port.Listener().Serve(ctx); err != nil {
				cfg.Logger.Error("packet port stopped", "component", "ssh-transport", "err", err)
			}
		}()
	}
	if ln != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.Server.Serve(ln); err != nil && !errors.Is(err, sshserver.ErrClosed) {
				cfg.Logger.Error("ssh transport server stopped", "component", "ssh-transport", "err", err)
			}
		}()
	}
	return s, nil
}

// SSHListenAddr is the SSH server's listening address (zero without one).
func (s *Stack) SSHListenAddr() netip.AddrPort { return s.sshAddr }

// PacketPortAddr is the packet port's address (zero without one).
func (s *Stack) PacketPortAddr() netip.AddrPort {
	if s.Port == nil {
		return netip.AddrPort{}
	}
	return s.Port.Addr()
}

// Set applies the netmap's relays and peers.
func (s *Stack) Set(c Config) {
	rs := make([]api.Relay, 0, len(c.Relays))
	for _, r := range c.Relays {
		if r.URL != "" {
			rs = append(rs, r)
		}
	}
	byRelay := make(map[nodekey.PublicKey]string, len(c.Peers))
	bySSH := make(map[nodekey.PublicKey]SSHPeer)
	keys := make([]nodekey.PublicKey, 0, len(c.Peers))
	for k, p := range c.Peers {
		keys = append(keys, k)
		byRelay[k] = p.HomeRelay
		if p.SSH.Addr.IsValid() {
			bySSH[k] = p.SSH
		}
	}
	s.Relays.Set(rs, c.HomeRelay, byRelay)
	s.SSH.Set(bySSH)
	if s.Server != nil {
		s.Server.SetAllowed(keys)
	}
}

// AcceptsSSH reports whether peers can reach this node over SSH (an SSH
// server or a packet port runs).
func (s *Stack) AcceptsSSH() bool { return s.Server != nil || s.Port != nil }

// Close stops the relay connections, the SSH dialers, the SSH server and
// the packet port. The Bind is the device's to close.
func (s *Stack) Close() error {
	s.cancel()
	var err error
	if s.Server != nil {
		err = s.Server.Close()
	}
	s.wg.Wait()
	return err
}
