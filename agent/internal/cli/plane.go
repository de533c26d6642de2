package cli

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/filter"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/node"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/transport"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// devicePlane adapts the data plane (package device) to node.DataPlane,
// with the packet filter (package filter), which the device calls on both
// paths.
type devicePlane struct {
	d              *device.Device
	flt            *filter.Filter
	log            *slog.Logger
	noSendBatching bool
	tr             *transport.Stack // UDP, SSH and relay transports
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
		p := devicePlane{noSendBatching: noSendBatching, log: log, flt: filter.New(filter.Config{Self: cfg.Self, Logger: log, LogLevel: slog.LevelDebug})}
		p.setFilter(cfg.Filter)
		tr, err := transport.NewStack(transport.StackConfig{Key: cfg.PrivateKey, UDP: device.NewBind(udpOffload),
			SSHListen: to.sshListen, PacketPort: to.packetPort, Coordinator: to.coordinator, RelayProxy: to.relayProxy, Logger: log})
		if err != nil {
			return nil, err
		}
		p.tr = tr
		d, err := device.New(dev, tr.Bind, p.config(cfg), log)
		if err != nil {
			tr.Close()
			return nil, err
		}
		p.d = d
		return p, nil
	}
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
		Filter:                 p.flt,
		Peers:                  make([]device.PeerConfig, 0, len(c.Peers)),
	}
	sps := make([]transport.StackPeer, 0, len(c.Peers))
	for _, pp := range c.Peers {
		sps = append(sps, transport.StackPeer{Key: pp.PublicKey, HomeRelay: pp.HomeRelay, SSHEndpoint: pp.SSHEndpoint, SSHHostKey: pp.SSHHostKey,
			SSHUser: pp.SSHUser, SSHPacketPort: pp.SSHPacketPort})
	}
	p.tr.Set(c.Relays, c.HomeRelay, sps)
	for i, pp := range c.Peers {
		dc.Peers = append(dc.Peers, device.PeerConfig{Name: pp.Name, PublicKey: pp.PublicKey, IP: pp.IP, Endpoints: pp.Endpoints,
			Fallbacks: p.tr.Fallbacks(sps[i])})
	}
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
