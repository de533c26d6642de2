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
	SSHHostKey  *nodekey.PublicKey
}

// Stack is a node's transports: the bind the device uses, the relay
// connections, the SSH dialer and, with SSHListen, the in-agent SSH server.
// The device owns and closes the Bind; Close stops the rest.
type Stack struct {
	Bind   *Bind
	Relays *Relays
	SSH    *SSH
	Server *sshserver.Server // nil without SSHListen

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
	s.Bind.SetSender(device.PathRelay, s.Relays)
	s.Bind.SetSender(device.PathSSH, s.SSH)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.Relays.Run(ctx) }()
	go func() { defer s.wg.Done(); s.SSH.Run(ctx) }()
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
		// OpenSSH peers (SSHHostKey set) need a login and packet port the
		// netmap does not carry yet: only sshgw peers are dialed.
		if p.SSHEndpoint.IsValid() && p.SSHEndpoint.Port() != 0 && p.SSHHostKey == nil {
			bySSH[p.Key] = SSHPeer{Addr: p.SSHEndpoint, HostKey: p.SSHHostKey}
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
// when either side accepts SSH (an OpenSSH peer needs a packet port this
// stack does not dial yet), and the relay when the mesh has one.
func (s *Stack) Fallbacks(p StackPeer) []string {
	var out []string
	if (p.SSHEndpoint.IsValid() && p.SSHHostKey == nil) || s.Server != nil {
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

// Close stops the relay connections, the SSH dialers and the SSH server.
// The Bind is the device's to close.
func (s *Stack) Close() error {
	s.cancel()
	var err error
	if s.Server != nil {
		err = s.Server.Close()
	}
	s.wg.Wait()
	return err
}
