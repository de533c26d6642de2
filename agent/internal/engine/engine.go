package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/filter"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/transport"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// DefaultUDPReceiveBuffer is Options.UDPReceiveBuffer's default.
const DefaultUDPReceiveBuffer = device.DefaultReceiveBuffer

// Options are the node's switches for the data plane (command-line flags).
// They are fixed for the engine's life; the netmap changes only Config.
type Options struct {
	// UDPOffload turns on UDP GSO/GRO where the kernel offers them
	// (device.NewBind).
	UDPOffload bool
	// UDPReceiveBuffer is the UDP sockets' receive buffer in bytes
	// (0: DefaultUDPReceiveBuffer).
	UDPReceiveBuffer int
	// DisableUDPSendBatching hands the bind one packet per send
	// (device.Config.DisableUDPSendBatching).
	DisableUDPSendBatching bool
	// SSHListen, PacketPort and RelayProxy configure the transports
	// (transport.StackConfig).
	SSHListen  string
	PacketPort string
	RelayProxy string
	// UDP is the UDP bind under the transports; nil: device.NewBind with
	// UDPOffload and UDPReceiveBuffer. Tests substitute an in-memory one (device/memnet).
	UDP device.Bind
}

// AcceptsSSH reports whether peers can reach the node over SSH with these
// options (an in-agent SSH server or a packet port): Local.AcceptsSSH.
func (o Options) AcceptsSSH() bool { return o.SSHListen != "" || o.PacketPort != "" }

// Engine is the node's data plane: the packet filter, the transports and
// the device, wired together and configured as one.
type Engine struct {
	opts Options
	log  *slog.Logger
	flt  *filter.Filter
	tr   *transport.Stack
	dev  *device.Device
}

// New starts the data plane on the TUN device dev with the first
// configuration. The engine owns dev from then on: Close closes it.
// log may be nil.
func New(dev tun.Device, cfg Config, opts Options, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{opts: opts, log: log,
		flt: filter.New(filter.Config{Self: cfg.Device.Self, Logger: log, LogLevel: slog.LevelDebug})}
	e.setFilter(cfg.Filter)
	udp := opts.UDP
	if udp == nil {
		udp = device.NewBind(opts.UDPOffload, opts.UDPReceiveBuffer)
	}
	tr, err := transport.NewStack(transport.StackConfig{Key: cfg.Device.PrivateKey, UDP: udp,
		SSHListen: opts.SSHListen, PacketPort: opts.PacketPort, RelayProxy: opts.RelayProxy, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("start engine: %w", err)
	}
	e.tr = tr
	tr.Set(cfg.Transport)
	// The device calls the filter on both paths (deviceConfig).
	d, err := device.New(dev, tr.Bind, e.deviceConfig(cfg), log)
	if err != nil {
		tr.Close()
		return nil, fmt.Errorf("start engine: %w", err)
	}
	e.dev = d
	return e, nil
}

// deviceConfig is cfg.Device with the engine's own settings.
func (e *Engine) deviceConfig(cfg Config) device.Config {
	dc := cfg.Device
	dc.Filter = e.flt
	dc.DisableUDPSendBatching = e.opts.DisableUDPSendBatching
	return dc
}

// Reconfig replaces the whole configuration: the filter first, so a policy
// change takes effect with the netmap that carries it, then the
// transports, then the device (peers no longer listed lose their
// sessions). An error from the device (an invalid configuration) leaves
// its peers as they were.
func (e *Engine) Reconfig(cfg Config) error {
	e.flt.SetSelf(cfg.Device.Self)
	e.setFilter(cfg.Filter)
	e.tr.Set(cfg.Transport)
	return e.dev.Reconfig(e.deviceConfig(cfg))
}

// setFilter installs the netmap's filter. Rules the filter cannot use allow
// nothing; the others apply, so the error is only logged.
func (e *Engine) setFilter(f *api.Filter) {
	if err := e.flt.SetFilter(f); err != nil {
		e.log.Warn("filter rules ignored", "component", "filter", "err", err)
	}
}

// Ping sends an echo through the tunnel to the peer with mesh IP ip and
// returns the round trip time and the path that answered.
func (e *Engine) Ping(ctx context.Context, ip netip.Addr) (time.Duration, string, error) {
	return e.dev.Ping(ctx, ip)
}

// PublicAddr asks the STUN server srv for the public address of the data
// plane's own UDP socket (the mapping peers see).
func (e *Engine) PublicAddr(ctx context.Context, srv netip.AddrPort) (netip.AddrPort, error) {
	return e.tr.Bind.PublicAddr(ctx, srv)
}

// SSHListenAddr is where the in-agent SSH server listens (zero without one).
func (e *Engine) SSHListenAddr() netip.AddrPort { return e.tr.SSHListenAddr() }

// NetworkChanged says the host's addresses changed: relay connections are
// dialed again from the current addresses.
func (e *Engine) NetworkChanged() { e.tr.Relays.Reconnect() }

// Close stops the device (which closes the bind and the TUN), then the
// transports.
func (e *Engine) Close() error {
	err := e.dev.Close()
	if terr := e.tr.Close(); err == nil {
		err = terr
	}
	return err
}
