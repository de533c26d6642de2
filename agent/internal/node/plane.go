package node

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// PlaneConfig is the data plane's whole configuration; the node computes it
// from each netmap and hands it over in one Reconfig.
type PlaneConfig struct {
	PrivateKey nodekey.PrivateKey
	PSK        [32]byte
	// PrevPSK is the mesh's previous PSK, accepted until PrevPSKUntil
	// (zero: none) after a rotation (api.MeshPSK).
	PrevPSK      [32]byte
	PrevPSKUntil time.Time
	MeshID       string
	ListenPort   uint16
	Self         netip.Addr
	MTU          int // the TUN's MTU
	Peers        []PlanePeer
	// Relays and HomeRelay are the netmap's relays and this node's home
	// relay (where peers reach it over the relay transport).
	Relays    []api.Relay
	HomeRelay string
	// Filter is the node's compiled inbound filter from the netmap. Nil
	// means no policy: the data plane then accepts nothing new from the
	// mesh, only replies to the node's own connections (package filter).
	Filter *api.Filter
}

// PlanePeer is one peer the data plane may talk to.
type PlanePeer struct {
	Name      string
	PublicKey nodekey.PublicKey
	IP        netip.Addr
	Endpoints []netip.AddrPort
	// HomeRelay and the SSH fields say how to reach the peer when no UDP
	// path works (api.Node).
	HomeRelay     string
	SSHEndpoint   netip.AddrPort
	SSHHostKey    *nodekey.PublicKey
	SSHUser       string
	SSHPacketPort uint16
}

// PeerStats is the data plane's view of one peer.
type PeerStats struct {
	Name          string
	IP            netip.Addr
	PublicKey     nodekey.PublicKey
	Endpoint      netip.AddrPort // current endpoint; zero before any
	Path          string         // e.g. "direct 192.0.2.1:41641"
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
	RxPackets     uint64
	TxPackets     uint64
	RTT           time.Duration
	PathChanges   uint64 // moves from one path to another
}

// PlaneStats is a snapshot of the data plane's counters.
type PlaneStats struct {
	ListenPort uint16
	Peers      []PeerStats
	// Node-wide counters; they include traffic of peers since removed.
	RxBytes, TxBytes     uint64
	RxPackets, TxPackets uint64
	HandshakesInitiated  uint64
	// HandshakesPreviousPSK counts initiations accepted with the previous
	// mesh PSK during a rotation's overlap.
	HandshakesPreviousPSK uint64
	HandshakesCompleted   uint64
	Drops                 map[string]uint64 // by reason
	// Filter counters (package filter): packets accepted by each rule of
	// the node's policy, flows tracked, and the policy version in force.
	FilterAccepts       map[string]uint64
	FilterFlows         int
	FilterPolicyVersion uint64
}

// DataPlane is what the node needs of the data plane (package device). It
// never talks to the registry; the node drives it with Reconfig.
type DataPlane interface {
	// Reconfig replaces the whole configuration; peers no longer listed
	// lose their sessions.
	Reconfig(PlaneConfig) error
	// Stats returns current counters.
	Stats() PlaneStats
	// Ping sends an echo through the tunnel to the peer with mesh IP ip
	// and returns the round trip time and the path that answered.
	Ping(ctx context.Context, ip netip.Addr) (time.Duration, string, error)
	// Close stops the data plane and closes the TUN device.
	Close() error
}

// EndpointSource is implemented by data planes that can learn their public
// UDP address (STUN over their own socket, so the mapping is the one peers
// see) and that may accept the SSH transport.
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

// PlaneFactory starts a data plane on the TUN device dev with the first
// configuration.
type PlaneFactory func(dev tun.Device, cfg PlaneConfig, log *slog.Logger) (DataPlane, error)

// OpenSSHEndpoint is what peers need to reach the node through an OpenSSH
// server (Config.SSHOpenSSH): its host key, the account whose
// authorized_keys lists their node keys, and the agent's packet port the
// server forwards direct-tcpip channels to.
type OpenSSHEndpoint struct {
	HostKey    nodekey.PublicKey
	User       string
	PacketPort uint16
}
