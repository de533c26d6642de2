package cli

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/node"
)

// devicePlane adapts the data plane (package device) to node.DataPlane.
type devicePlane struct{ d *device.Device }

func newDataPlane(dev tun.Device, cfg node.PlaneConfig, log *slog.Logger) (node.DataPlane, error) {
	d, err := device.New(dev, conn.NewStdNetBind(), deviceConfig(cfg), log)
	if err != nil {
		return nil, err
	}
	return devicePlane{d}, nil
}

func deviceConfig(c node.PlaneConfig) device.Config {
	dc := device.Config{
		PrivateKey: c.PrivateKey,
		PSK:        c.PSK,
		MeshID:     c.MeshID,
		ListenPort: c.ListenPort,
		Self:       c.Self,
		MTU:        c.MTU,
		Peers:      make([]device.PeerConfig, 0, len(c.Peers)),
	}
	for _, p := range c.Peers {
		dc.Peers = append(dc.Peers, device.PeerConfig{Name: p.Name, PublicKey: p.PublicKey, IP: p.IP, Endpoints: p.Endpoints})
	}
	return dc
}

func (p devicePlane) Reconfig(c node.PlaneConfig) error { return p.d.Reconfig(deviceConfig(c)) }

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
	for _, ps := range s.Peers {
		ep, _ := netip.ParseAddrPort(ps.Endpoint)
		out.Peers = append(out.Peers, node.PeerStats{
			Name: ps.Name, IP: ps.IP, PublicKey: ps.PublicKey,
			Endpoint: ep, Path: ps.Path, LastHandshake: ps.LastHandshake,
			RxBytes: ps.RxBytes, TxBytes: ps.TxBytes, RxPackets: ps.RxPackets, TxPackets: ps.TxPackets,
			RTT: ps.RTT,
		})
	}
	return out
}
