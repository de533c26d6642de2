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
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// devicePlane adapts the data plane (package device) to node.DataPlane,
// with the packet filter (package filter) on every packet: inbound through
// the device's filter hook, outbound through the wrapped TUN.
type devicePlane struct {
	d              *device.Device
	flt            *filter.Filter
	log            *slog.Logger
	noSendBatching bool
}

// planeFactory returns the node's data plane factory with the UDP offload
// switches.
func planeFactory(udpOffload, noSendBatching bool) node.PlaneFactory {
	return func(dev tun.Device, cfg node.PlaneConfig, log *slog.Logger) (node.DataPlane, error) {
		p := devicePlane{noSendBatching: noSendBatching, log: log, flt: filter.New(filter.Config{Logger: log, LogLevel: slog.LevelDebug})}
		p.setFilter(cfg.Filter)
		d, err := device.New(filter.WrapTUN(dev, p.flt), device.NewBind(udpOffload), p.config(cfg), log)
		if err != nil {
			return nil, err
		}
		p.d = d
		return p, nil
	}
}

func (p devicePlane) config(c node.PlaneConfig) device.Config {
	dc := device.Config{
		PrivateKey:             c.PrivateKey,
		PSK:                    c.PSK,
		MeshID:                 c.MeshID,
		ListenPort:             c.ListenPort,
		Self:                   c.Self,
		MTU:                    c.MTU,
		DisableUDPSendBatching: p.noSendBatching,
		Filter:                 p.flt.Inbound,
		Peers:                  make([]device.PeerConfig, 0, len(c.Peers)),
	}
	for _, p := range c.Peers {
		dc.Peers = append(dc.Peers, device.PeerConfig{Name: p.Name, PublicKey: p.PublicKey, IP: p.IP, Endpoints: p.Endpoints})
	}
	return dc
}

// Reconfig applies the new filter first, so a policy change takes effect
// with the netmap that carries it.
func (p devicePlane) Reconfig(c node.PlaneConfig) error {
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

func (p devicePlane) Close() error { return p.d.Close() }

func (p devicePlane) Stats() node.PlaneStats {
	s := p.d.Status()
	c := s.Counters
	out := node.PlaneStats{
		ListenPort: s.ListenPort,
		RxBytes:    c.RxBytes, TxBytes: c.TxBytes, RxPackets: c.RxPackets, TxPackets: c.TxPackets,
		HandshakesInitiated: c.HandshakesInitiated, HandshakesCompleted: c.HandshakesCompleted,
		Drops: make(map[string]uint64, len(c.Drops)),
		Peers: make([]node.PeerStats, 0, len(s.Peers)),
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
			RTT: ps.RTT,
		})
	}
	return out
}
