package engine

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/transport"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Config is the data plane's whole configuration: the configurations of
// its three parts, made from a netmap by FromNetmap. Reconfig hands each
// part its own as is.
type Config struct {
	// Device is the device's configuration: identity, PSKs, MTU and the
	// peers with their typed endpoints (UDP, SSH, relay). Its Filter and
	// DisableUDPSendBatching are the engine's to set (Options).
	Device device.Config
	// Transport is the relays and how to reach each peer over SSH or a
	// relay.
	Transport transport.Config
	// Filter is the node's compiled inbound filter from the netmap. Nil
	// means no policy: the data plane then accepts nothing new from the
	// mesh, only replies to the node's own connections (package filter).
	Filter *api.Filter
}

// Local is what the data plane's configuration takes from the node itself
// rather than from the netmap.
type Local struct {
	Key    nodekey.PrivateKey
	MeshID string
	// PSK is the mesh PSK in force: the latest valid one a netmap carried,
	// else the one saved at join (Previous and PreviousUntil during a
	// rotation's overlap).
	PSK        api.MeshPSK
	Self       netip.Addr // the node's mesh IP
	MTU        int        // the TUN's MTU
	ListenPort uint16     // 0: the device picks one
	// Coordinator is the coordinator's URL: a relay the netmap lists without
	// URL is the coordinator's own, at api.PathRelay on its host.
	Coordinator string
	// AcceptsSSH says peers can reach this node over SSH
	// (Options.AcceptsSSH): then every peer gets an SSH endpoint, for the
	// connections they open to this node.
	AcceptsSSH bool
}

// FromNetmap converts a netmap into the data plane's configuration: the
// one place where api types become the engine's. A nil nm gives the
// configuration without peers (before the first netmap, or when the
// registry refuses the node). Peers that are unusable (no valid key, an
// address outside the mesh, the node itself, a duplicate key or IP) are
// left out and reported in skipped; unusable endpoints of a peer are left
// out silently. Peers are sorted by name; each peer's endpoints are its
// UDP addresses in the netmap's order, then SSH, then the relay:
//   - SSH when the peer publishes an endpoint this node can dial (an sshgw,
//     or an OpenSSH server with host key, user and packet port), or when
//     this node accepts SSH (l.AcceptsSSH);
//   - the relay when the mesh has a relay with a URL.
func FromNetmap(nm *api.Netmap, l Local) (cfg Config, skipped []string) {
	cfg.Device = device.Config{
		PrivateKey: l.Key,
		MeshID:     l.MeshID,
		ListenPort: l.ListenPort,
		Self:       l.Self,
		MTU:        l.MTU,
	}
	if len(l.PSK.Current) == api.PSKSize {
		copy(cfg.Device.PSK[:], l.PSK.Current)
		if len(l.PSK.Previous) == api.PSKSize {
			copy(cfg.Device.PrevPSK[:], l.PSK.Previous)
			cfg.Device.PrevPSKUntil = l.PSK.PreviousUntil
		}
	}
	cfg.Transport.Peers = map[nodekey.PublicKey]transport.Peer{}
	if nm == nil {
		return cfg, nil
	}
	cfg.Filter = nm.Filter
	cfg.Transport.HomeRelay = nm.Self.HomeRelay
	coordRelay := coordinatorRelayURL(l.Coordinator)
	for _, r := range nm.Relays {
		if r.URL == "" {
			r.URL = coordRelay
		}
		if r.URL != "" {
			cfg.Transport.Relays = append(cfg.Transport.Relays, r)
		}
	}
	hasRelay := len(cfg.Transport.Relays) > 0
	seenKey := make(map[nodekey.PublicKey]bool)
	seenIP := make(map[netip.Addr]bool)
	for _, p := range nm.Peers {
		why := ""
		switch {
		case p.PublicKey == nm.Self.PublicKey || p.IP == nm.Self.IP:
			why = "is this node"
		case p.PublicKey.Validate() != nil:
			why = "invalid public key"
		case !p.IP.Is4() || !nm.MeshCIDR.Contains(p.IP):
			why = fmt.Sprintf("ip %s outside mesh %s", p.IP, nm.MeshCIDR)
		case seenKey[p.PublicKey]:
			why = "duplicate public key"
		case seenIP[p.IP]:
			why = "duplicate ip"
		}
		if why != "" {
			skipped = append(skipped, p.Name+": "+why)
			continue
		}
		seenKey[p.PublicKey] = true
		seenIP[p.IP] = true
		tp := transport.Peer{HomeRelay: p.HomeRelay, SSH: sshPeer(p)}
		eps := make([]device.Endpoint, 0, len(p.Endpoints)+2)
		for _, ap := range p.Endpoints {
			if ap.IsValid() && ap.Port() != 0 && !ap.Addr().IsUnspecified() && !ap.Addr().IsMulticast() {
				eps = append(eps, device.UDPEndpoint(ap))
			}
		}
		if tp.SSH.Addr.IsValid() || l.AcceptsSSH {
			eps = append(eps, device.SSHEndpoint(p.PublicKey))
		}
		if hasRelay {
			eps = append(eps, device.RelayEndpoint(p.PublicKey))
		}
		cfg.Device.Peers = append(cfg.Device.Peers, device.PeerConfig{Name: p.Name, PublicKey: p.PublicKey, IP: p.IP, Endpoints: eps})
		cfg.Transport.Peers[p.PublicKey] = tp
	}
	slices.SortFunc(cfg.Device.Peers, func(a, b device.PeerConfig) int { return strings.Compare(a.Name, b.Name) })
	return cfg, skipped
}

// sshPeer is how to dial p over SSH; zero when p publishes no endpoint this
// node can dial (none, or an OpenSSH endpoint the registry would refuse).
func sshPeer(p api.Node) transport.SSHPeer {
	if !p.SSHEndpoint.IsValid() || p.SSHEndpoint.Port() == 0 {
		return transport.SSHPeer{}
	}
	if p.SSHHostKey == nil {
		return transport.SSHPeer{Addr: p.SSHEndpoint}
	}
	if p.SSHUser == "" || p.SSHPacketPort == 0 {
		return transport.SSHPeer{}
	}
	hk := *p.SSHHostKey
	return transport.SSHPeer{Addr: p.SSHEndpoint, HostKey: &hk, User: p.SSHUser, PacketPort: p.SSHPacketPort}
}

// coordinatorRelayURL is the coordinator's relay (wss://host:port/relay),
// "" when coordinator has no host.
func coordinatorRelayURL(coordinator string) string {
	u, err := url.Parse(coordinator)
	if err != nil || u.Host == "" {
		return ""
	}
	u.Scheme, u.Path = "wss", api.PathRelay
	return u.String()
}
