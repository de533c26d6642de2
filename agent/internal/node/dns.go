package node

import (
	"net/netip"
	"slices"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/splitdns"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// dnsConfig is the resolver configuration a netmap asks for. The node's own
// address is left out of the servers: where tunnelmesh-meshdns runs next to
// this node and forwards other names to the system resolver, pointing the
// system resolver at it would make it forward to itself.
func dnsConfig(nm *api.Netmap, self netip.Addr) splitdns.Config {
	var servers []netip.Addr
	for _, s := range nm.DNS.Servers {
		if s != self && s != nm.Self.IP {
			servers = append(servers, s)
		}
	}
	return splitdns.Config{Zone: nm.DNS.Zone, Servers: servers, MeshCIDR: nm.MeshCIDR}
}

// applyDNS hands cfg to the resolver manager (on every netmap: in resolv.conf
// mode that also repairs a file someone else rewrote), logging changes and
// new errors once.
func (n *Node) applyDNS(cfg splitdns.Config) {
	if n.dns == nil {
		return
	}
	err := n.dns.Apply(cfg)
	n.dnsMu.Lock()
	defer n.dnsMu.Unlock()
	if err != nil {
		if err.Error() != n.dnsErr {
			n.dnsErr = err.Error()
			n.log.Warn("mesh dns settings", "zone", cfg.Zone, "servers", cfg.Servers, "err", err)
		}
		return
	}
	n.dnsErr = ""
	if cfg.Zone != n.dnsLast.Zone || cfg.MeshCIDR != n.dnsLast.MeshCIDR || !slices.Equal(cfg.Servers, n.dnsLast.Servers) {
		n.dnsLast = cfg
		if n.dns.Mode() != splitdns.ModeOff {
			n.log.Info("mesh dns settings applied", "mode", n.dns.Mode(), "zone", cfg.Zone, "servers", cfg.Servers)
		}
	}
}
