package device

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// DefaultMTU is the tunnel MTU for a 1500-byte underlay: 1500 minus the
// IPv6 (40) and UDP (8) headers and the transport overhead (32).
const DefaultMTU = 1420

// Config is the declarative configuration of a Device. Reconfig replaces the
// whole of it; peers are matched by public key.
type Config struct {
	PrivateKey nodekey.PrivateKey
	PSK        [32]byte // the mesh PSK: initiations use it, responders accept it
	// PrevPSK is the mesh's previous PSK after a rotation; until
	// PrevPSKUntil (zero: none) responders accept initiations made with it
	// too (from peers that have not seen the new PSK yet), and an
	// initiator's retransmissions alternate between the two (for
	// responders that have not seen it yet either).
	PrevPSK      [32]byte
	PrevPSKUntil time.Time
	MeshID       string
	// ListenPort is the UDP port; 0 picks a free one. It is fixed when the
	// Device is created: a later Reconfig must pass 0 or the same port.
	ListenPort uint16
	// Self is this node's mesh IP; pings are sent from it.
	Self netip.Addr
	// MTU is the tunnel MTU (the TUN's); 0 means DefaultMTU. Plaintexts are
	// padded up to it at most, and larger packets from the TUN are dropped
	// (DropTooBig) and answered with ICMP "fragmentation needed" written
	// back into the TUN.
	MTU int
	// PersistentKeepalive is how often a session that sent nothing sends a
	// keepalive, so NAT mappings stay open. 0 means
	// wire.PersistentKeepaliveDefault; negative disables it.
	PersistentKeepalive time.Duration
	// DisableUDPSendBatching makes the device hand the bind one packet per
	// Send call, which turns off UDP GSO coalescing on conn.StdNetBind.
	// (UDP GRO and TUN offloads are chosen when the bind and the TUN are
	// created; see NewBind.)
	DisableUDPSendBatching bool
	// Filter, when set, is the packet filter of both paths (see Filter).
	Filter Filter
	Peers  []PeerConfig
}

// Filter is the packet filter the device applies; package filter's Filter
// is one. The device parses each packet once and hands the filter that
// parse. Both methods run on the per-packet path: they must not block, must
// not allocate, and may be called concurrently (for different peers, and
// from the TUN reader); neither may keep p or modify its packet.
type Filter interface {
	// Outbound is shown every packet read from the TUN that goes to a
	// peer, before it is encrypted.
	Outbound(p *packet.Parsed)
	// Inbound is asked about every decrypted packet whose source is the
	// sending peer's mesh IP, before it is written to the TUN; false drops
	// it (DropFilter).
	Inbound(p *packet.Parsed) bool
}

// filterBox holds a Filter for an atomic.Pointer.
type filterBox struct{ Filter }

// PeerConfig describes one peer.
type PeerConfig struct {
	Name      string
	PublicKey nodekey.PublicKey
	IP        netip.Addr // the peer's mesh IP: the only source address accepted from it
	// Endpoints are the ways to reach the peer, UDP addresses first, then
	// the endpoints of other transports (SSH, relay: package transport)
	// that carry its packets when no UDP path works; UDP is preferred, then
	// SSH, then the relay (paths.go). Handshakes go to all of them until
	// one answers; after that the peer's endpoint is wherever its last
	// authenticated packet came from (roaming). The bind makes its
	// endpoints from these values (Bind.Endpoint).
	Endpoints []Endpoint
}

// ErrInvalidConfig is wrapped by every Validate error.
var ErrInvalidConfig = errors.New("invalid device config")

// Validate checks cfg; the error names the offending field.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.PrivateKey.IsZero() {
		return bad("privateKey: missing")
	}
	if c.MeshID == "" {
		return bad("meshID: missing")
	}
	if c.PSK == ([32]byte{}) {
		return bad("psk: all zero")
	}
	if !c.PrevPSKUntil.IsZero() && c.PrevPSK == ([32]byte{}) {
		return bad("prevPSK: all zero with prevPSKUntil set")
	}
	if !c.Self.IsValid() {
		return bad("self: missing")
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535-80) {
		return bad("mtu: %d out of range [576, 65455]", c.MTU)
	}
	own := c.PrivateKey.Public()
	keys := make(map[nodekey.PublicKey]int, len(c.Peers))
	ips := make(map[netip.Addr]int, len(c.Peers))
	for i, p := range c.Peers {
		if err := p.PublicKey.Validate(); err != nil {
			return bad("peers[%d].publicKey: %v", i, err)
		}
		if p.PublicKey == own {
			return bad("peers[%d].publicKey: is this node's own key", i)
		}
		if j, dup := keys[p.PublicKey]; dup {
			return bad("peers[%d].publicKey: duplicate of peers[%d]", i, j)
		}
		keys[p.PublicKey] = i
		if !p.IP.IsValid() {
			return bad("peers[%d].ip: missing", i)
		}
		if p.IP.Unmap() == c.Self.Unmap() {
			return bad("peers[%d].ip: %s is this node's own IP", i, p.IP)
		}
		if j, dup := ips[p.IP.Unmap()]; dup {
			return bad("peers[%d].ip: %s duplicate of peers[%d]", i, p.IP, j)
		}
		ips[p.IP.Unmap()] = i
		for k, ep := range p.Endpoints {
			if err := ep.Validate(); err != nil {
				return bad("peers[%d].endpoints[%d]: %v", i, k, err)
			}
		}
	}
	return nil
}

func (c *Config) mtu() int {
	if c.MTU == 0 {
		return DefaultMTU
	}
	return c.MTU
}
