package cluster

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Resolve returns the mesh addresses of peers (node names or mesh IPs, as
// in cluster.peers) in nm, in the order given. A name may carry the mesh's
// zone ("store1.mesh"). missing lists the names nm does not hold yet (a
// peer that has not joined); addrs is complete only when missing is empty.
// self reports whether nm.Self is among the peers.
func Resolve(peers []string, nm *api.Netmap) (addrs []netip.Addr, missing []string, self bool) {
	byName := map[string]netip.Addr{}
	for _, n := range append([]api.Node{nm.Self}, nm.Peers...) {
		if n.Name != "" && n.IP.IsValid() {
			byName[strings.ToLower(n.Name)] = n.IP
		}
	}
	zone := "." + strings.ToLower(nm.DNS.Zone)
	if zone == "." {
		zone = ".mesh"
	}
	for _, p := range peers {
		a, err := netip.ParseAddr(p)
		if err != nil {
			var ok bool
			a, ok = byName[strings.TrimSuffix(strings.ToLower(p), zone)]
			if !ok {
				missing = append(missing, p)
				continue
			}
		}
		if a == nm.Self.IP {
			self = true
		}
		addrs = append(addrs, a)
	}
	return addrs, missing, self
}

// MasterPeers renders addrs as SeaweedFS's -master.peers value, each at
// port.
func MasterPeers(addrs []netip.Addr, port uint16) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = netip.AddrPortFrom(a, port).String()
	}
	return strings.Join(s, ",")
}

// CheckResolved reports a peer list that cannot form this node's cluster:
// an address listed twice, or this node (self) not among them.
func CheckResolved(peers []string, addrs []netip.Addr, self bool, selfIP netip.Addr) error {
	seen := map[netip.Addr]string{}
	for i, a := range addrs {
		if p, dup := seen[a]; dup {
			return fmt.Errorf("cluster.peers: %q and %q are the same node (%s)", p, peers[i], a)
		}
		seen[a] = peers[i]
	}
	if !self {
		return fmt.Errorf("cluster.peers: this node (%s) is not listed: every node lists all the cluster's storage nodes, itself included", selfIP)
	}
	return nil
}
