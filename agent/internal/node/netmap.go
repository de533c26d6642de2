package node

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// planePeers turns a netmap's peers into data plane peers. Peers that are
// unusable (no valid key, an address outside the mesh, the node itself, a
// duplicate key or IP) are left out and reported in skipped.
func planePeers(nm *api.Netmap) (peers []PlanePeer, skipped []string) {
	seenKey := make(map[[32]byte]bool)
	seenIP := make(map[[4]byte]bool)
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
		case seenIP[p.IP.As4()]:
			why = "duplicate ip"
		}
		if why != "" {
			skipped = append(skipped, p.Name+": "+why)
			continue
		}
		seenKey[p.PublicKey] = true
		seenIP[p.IP.As4()] = true
		eps := make([]netip.AddrPort, 0, len(p.Endpoints))
		for _, ep := range p.Endpoints {
			if ep.IsValid() && ep.Port() != 0 && !ep.Addr().IsUnspecified() && !ep.Addr().IsMulticast() {
				eps = append(eps, ep)
			}
		}
		peers = append(peers, PlanePeer{Name: p.Name, PublicKey: p.PublicKey, IP: p.IP, Endpoints: eps,
			HomeRelay: p.HomeRelay, SSHEndpoint: p.SSHEndpoint, SSHHostKey: p.SSHHostKey,
			SSHUser: p.SSHUser, SSHPacketPort: p.SSHPacketPort})
	}
	slices.SortFunc(peers, func(a, b PlanePeer) int { return strings.Compare(a.Name, b.Name) })
	return peers, skipped
}
