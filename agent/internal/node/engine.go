package node

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/engine"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Engine is what the node needs of the data plane (*engine.Engine; tests
// substitute a fake). It never talks to the registry: the node converts
// each netmap (engine.FromNetmap) and hands it over in one Reconfig.
type Engine interface {
	// Reconfig replaces the whole configuration; peers no longer listed
	// lose their sessions.
	Reconfig(engine.Config) error
	// Status returns a snapshot of the data plane.
	Status() engine.Status
	// Ping sends an echo through the tunnel to the peer with mesh IP ip
	// and returns the round trip time and the path that answered.
	Ping(ctx context.Context, ip netip.Addr) (time.Duration, string, error)
	// Close stops the data plane and closes the TUN device.
	Close() error
}

// EndpointSource is implemented by data planes that can learn their public
// UDP address (STUN over their own socket, so the mapping is the one peers
// see) and that may accept the SSH transport (*engine.Engine does).
type EndpointSource interface {
	// PublicAddr asks the STUN server srv for the data plane socket's
	// public address.
	PublicAddr(ctx context.Context, srv netip.AddrPort) (netip.AddrPort, error)
	// SSHListenAddr is where the data plane accepts the SSH transport
	// (zero if it does not).
	SSHListenAddr() netip.AddrPort
	// NetworkChanged says the host's addresses changed: connections the
	// data plane keeps (relays) may be bound to one that is gone.
	NetworkChanged()
}

// EngineFactory starts a data plane on the TUN device dev with the first
// configuration.
type EngineFactory func(dev tun.Device, cfg engine.Config, log *slog.Logger) (Engine, error)

// OpenSSHEndpoint is what peers need to reach the node through an OpenSSH
// server (Config.SSHOpenSSH): its host key, the account whose
// authorized_keys lists their node keys, and the agent's packet port the
// server forwards direct-tcpip channels to.
type OpenSSHEndpoint struct {
	HostKey    nodekey.PublicKey
	User       string
	PacketPort uint16
}
