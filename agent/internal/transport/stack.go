package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"sync"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	sshserver "github.com/tunnelmesh/tunnelmesh/sshgw/server"
)

// StackConfig configures a Stack.
type StackConfig struct {
	Key nodekey.PrivateKey
	// UDP is the inner UDP bind (device.NewBind).
	UDP conn.Bind
	// SSHListen, if set, runs the SSH transport's server (sshgw in-agent
	// mode) on this TCP address; peers in the netmap may connect.
	SSHListen string
	// PacketPort, if set, serves the packet port (sshgw/packetport) on this
	// loopback ip:port: peers coming through this node's OpenSSH server or
	// a standalone tunnelmesh-sshgw arrive there (see packetport.go).
	PacketPort string
	// Coordinator is the coordinator URL (https://host:port): a relay the
	// netmap lists without URL is the coordinator's, at api.PathRelay.
	Coordinator string
	// RelayProxy is relay client.Config.Proxy.
	RelayProxy string
	Logger     *slog.Logger
}

// StackPeer is what the transports need of one peer.
type StackPeer struct {
	Key         nodekey.PublicKey
	HomeRelay   string
	SSHEndpoint netip.AddrPort
	// SSHHostKey, SSHUser and SSHPacketPort describe an OpenSSH server at
	// SSHEndpoint (api.Node); without SSHHostKey the endpoint is sshgw.
	SSHHostKey    *nodekey.PublicKey
	SSHUser       string
	SSHPacketPort uint16
}

// sshPeer returns how to dial p over SSH, false when it cannot be dialed.
func (p StackPeer) sshPeer() (SSHPeer, bool) {
	if !p.SSHEndpoint.IsValid() || p.SSHEndpoint.Port() == 0 {
		return SSHPeer{}, false
	}
	if p.SSHHostKey == nil {
		return SSHPeer{Addr: p.SSHEndpoint}, true
	}
	if p.SSHUser == "" || p.SSHPacketPort == 0 {
		return SSHPeer{}, false // an OpenSSH endpoint the registry would not accept
	}
	hk := *p.SSHHostKey
	return SSHPeer{Addr: p.SSHEndpoint, HostKey: &hk, User: p.SSHUser, PacketPort: p.SSHPacketPort}, true
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

	mu        sync.Mutex // guards hasRelays
	hasRelays bool
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

// Set applies a netmap's relays and peers.
func (s *Stack) Set(relays []api.Relay, home string, peers []StackPeer) {
	rs := make([]api.Relay, 0, len(relays))
	for _, r := range relays {
		if r.URL == "" {
			r.URL = s.coordinatorRelayURL()
			if r.URL == "" {
				continue
			}
		}
		rs = append(rs, r)
	}
	byRelay := make(map[nodekey.PublicKey]string, len(peers))
	bySSH := make(map[nodekey.PublicKey]SSHPeer)
	keys := make([]nodekey.PublicKey, 0, len(peers))
	for _, p := range peers {
		keys = append(keys, p.Key)
		byRelay[p.Key] = p.HomeRelay
		if sp, ok := p.sshPeer(); ok {
			bySSH[p.Key] = sp
		}
	}
	s.Relays.Set(rs, home, byRelay)
	s.SSH.Set(bySSH)
	if s.Server != nil {
		s.Server.SetAllowed(keys)
	}
	s.mu.Lock()
	s.hasRelays = len(rs) > 0
	s.mu.Unlock()
}

func (s *Stack) coordinatorRelayURL() string {
	u, err := url.Parse(s.cfg.Coordinator)
	if err != nil || u.Host == "" {
		return ""
	}
	u.Scheme, u.Path = "wss", api.PathRelay
	return u.String()
}

// Fallbacks returns the device.PeerConfig.Fallbacks for p: its SSH endpoint
// when either side accepts SSH (p publishes a dialable endpoint, or this
// node runs an SSH server or a packet port), and the relay when the mesh
// has one.
func (s *Stack) Fallbacks(p StackPeer) []string {
	var out []string
	if _, ok := p.sshPeer(); ok || s.Server != nil || s.Port != nil {
		out = append(out, EndpointString(device.PathSSH, p.Key))
	}
	s.mu.Lock()
	relays := s.hasRelays
	s.mu.Unlock()
	if relays {
		out = append(out, EndpointString(device.PathRelay, p.Key))
	}
	return out
}

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
