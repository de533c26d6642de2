package cli

import (
	"context"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/filter"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/node"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/transport"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// devicePlane adapts the data plane (package device) to node.DataPlane,
// with the packet filter (package filter) on every packet: inbound through
// the device's filter hook, outbound through the wrapped TUN.
type devicePlane struct {
	d              *device.Device
	flt            *filter.Filter
	log            *slog.Logger
	noSendBatching bool
	tr             *transport.Stack // UDP, SSH and relay transports
	// coordinatorRelayURL is the coordinator's relay, for relays the
	// netmap lists without URL ("" if the coordinator URL has no host).
	coordinatorRelayURL string
}

// transportOptions configure the data plane's transports.
type transportOptions struct {
	sshListen   string // "" for no SSH transport server
	packetPort  string // "" for no packet port
	coordinator string // the coordinator URL (its relay's default URL)
	relayProxy  string
}

// planeFactory returns the node's data plane factory with the UDP offload
// switches and the transports.
func planeFactory(udpOffload, noSendBatching bool, to transportOptions) node.PlaneFactory {
	return func(dev tun.Device, cfg node.PlaneConfig, log *slog.Logger) (node.DataPlane, error) {
		p := devicePlane{coordinatorRelayURL: relayURL(to.coordinator), noSendBatching: noSendBatching, log: log, flt: filter.New(filter.Config{Self: cfg.Self, Logger: log, LogLevel: slog.LevelDebug})}
		p.setFilter(cfg.Filter)
		tr, err := transport.NewStack(transport.StackConfig{Key: cfg.PrivateKey, UDP: device.NewBind(udpOffload),
			SSHListen: to.sshListen, PacketPort: to.packetPort, RelayProxy: to.relayProxy, Logger: log})
		if err != nil {
			return nil, err
		}
		p.tr = tr
		d, err := device.New(filter.WrapTUN(dev, p.flt), tr.Bind, p.config(cfg), log)
		if err != nil {
			tr.Close()
			return nil, err
		}
		p.d = d
		return p, nil
	}
}

func relayURL(coordinator string) string {
	u, err := url.Parse(coordinator)
	if err != nil || u.Host == "" {
		return ""
	}
	u.Scheme, u.Path = "wss", api.PathRelay
	return u.String()
}

// PublicAddr implements node.EndpointSource: STUN on the data plane's socket.
func (p devicePlane) PublicAddr(ctx context.Context, srv netip.AddrPort) (netip.AddrPort, error) {
	return p.tr.Bind.PublicAddr(ctx, srv)
}

// NetworkChanged implements node.EndpointSource: relay connections are
// dialed again from the current addresses.
func (p devicePlane) NetworkChanged() { p.tr.Relays.Reconnect() }

// SSHListenAddr implements node.EndpointSource.
func (p devicePlane) SSHListenAddr() netip.AddrPort { return p.tr.SSHListenAddr() }

func (p devicePlane) config(c node.PlaneConfig) device.Config {
	dc := device.Config{
		PrivateKey:             c.PrivateKey,
		PSK:                    c.PSK,
		PrevPSK:                c.PrevPSK,
		PrevPSKUntil:           c.PrevPSKUntil,
		MeshID:                 c.MeshID,
		ListenPort:             c.ListenPort,
		Self:                   c.Self,
		MTU:                    c.MTU,
		DisableUDPSendBatching: p.noSendBatching,
		Filter:                 p.flt.Inbound,
		Peers:                  make([]device.PeerConfig, 0, len(c.Peers)),
	}
	tc := transport.Config{Relays: make([]api.Relay, 0, len(c.Relays)), HomeRelay: c.HomeRelay,
		Peers: make(map[nodekey.PublicKey]transport.Peer, len(c.Peers))}
	for _, r := range c.Relays {
		if r.URL == "" {
			r.URL = p.coordinatorRelayURL
		}
		tc.Relays = append(tc.Relays, r)
	}
	hasRelays := slices.ContainsFunc(tc.Relays, func(r api.Relay) bool { return r.URL != "" })
	for _, pp := range c.Peers {
		tp := transport.Peer{HomeRelay: pp.HomeRelay}
		if pp.SSHEndpoint.IsValid() && pp.SSHEndpoint.Port() != 0 {
			if pp.SSHHostKey == nil {
				tp.SSH = transport.SSHPeer{Addr: pp.SSHEndpoint}
			} else if pp.SSHUser != "" && pp.SSHPacketPort != 0 {
				hk := *pp.SSHHostKey
				tp.SSH = transport.SSHPeer{Addr: pp.SSHEndpoint, HostKey: &hk, User: pp.SSHUser, PacketPort: pp.SSHPacketPort}
			}
		}
		tc.Peers[pp.PublicKey] = tp
		eps := make([]device.Endpoint, 0, len(pp.Endpoints)+2)
		for _, ap := range pp.Endpoints {
			eps = append(eps, device.UDPEndpoint(ap))
		}
		if tp.SSH.Addr.IsValid() || p.tr.AcceptsSSH() {
			eps = append(eps, device.SSHEndpoint(pp.PublicKey))
		}
		if hasRelays {
			eps = append(eps, device.RelayEndpoint(pp.PublicKey))
		}
		dc.Peers = append(dc.Peers, device.PeerConfig{Name: pp.Name, PublicKey: pp.PublicKey, IP: pp.IP, Endpoints: eps})
	}
	p.tr.Set(tc)
	return dc
}

// Reconfig applies the new filter first, so a policy change takes effect
// with the netmap that carries it.
func (p devicePlane) Reconfig(c node.PlaneConfig) error {
	p.flt.SetSelf(c.Self)
	p.setFilter(c.Filter)
	return p.d.Reconfig(p.config(c))
}

// setFilter installs the netmap's filter. Rules the filter cannot use allow
// nothing; the others apply, so the error is only logged.
func (p devicePlane) setFilter(f *api.Filter) {
	if err := p.flt.SetFilter(f); err != nil {
		p.log.Warn("filter rules ignored", "component", "filter", "err", err)
	}
}

func (p devicePlane) Ping(ctx context.Context, ip netip.Addr) (time.Duration, string, error) {
	return p.d.Ping(ctx, ip)
}

// Close stops the device (which closes the bind), then the transports.
func (p devicePlane) Close() error {
	err := p.d.Close()
	if terr := p.tr.Close(); err == nil {
		err = terr
	}
	return err
}

func (p devicePlane) Stats() node.PlaneStats {
	s := p.d.Status()
	c := s.Counters
	out := node.PlaneStats{
		ListenPort: s.ListenPort,
		RxBytes:    c.RxBytes, TxBytes: c.TxBytes, RxPackets: c.RxPackets, TxPackets: c.TxPackets,
		HandshakesInitiated: c.HandshakesInitiated, HandshakesCompleted: c.HandshakesCompleted,
		HandshakesPreviousPSK: c.HandshakesPreviousPSK,
		Drops:                 make(map[string]uint64, len(c.Drops)),
		Peers:                 make([]node.PeerStats, 0, len(s.Peers)),
	}
	for r, v := range c.Drops {
		out.Drops[device.DropReason(r).String()] = v
	}
	fs := p.flt.Stats()
	for r, v := range fs.Drops {
		out.Drops["filter_"+r.String()] = v
	}
	out.FilterAccepts, out.FilterFlows, out.FilterPolicyVersion = fs.RuleAccepts, fs.Flows, fs.PolicyVersion
	for _, ps := range s.Peers {
		out.Peers = append(out.Peers, node.PeerStats{
			Name: ps.Name, IP: ps.IP, PublicKey: ps.PublicKey,
			Endpoint: ps.Endpoint, Path: ps.Path, LastHandshake: ps.LastHandshake,
			RxBytes: ps.RxBytes, TxBytes: ps.TxBytes, RxPackets: ps.RxPackets, TxPackets: ps.TxPackets,
			RTT: ps.RTT, PathChanges: ps.PathChanges,
		})
	}
	return out
}
