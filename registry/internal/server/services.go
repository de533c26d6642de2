package server

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// DNSServerTag is the tag a node needs, besides publishing the
// api.ServiceDNS service on udp/53, to be listed as a mesh DNS server in
// every netmap. Tags come only from the admin (the join token), so a node
// cannot make itself the mesh's resolver; and the default policy
// (registry/policy/default.yaml) lets every node reach udp/tcp 53 on nodes
// with this tag, so a listed server is reachable.
const DNSServerTag = "dns"

// validateServices checks the services a node reports: at most
// api.MaxServices, each named like a DNS label, protocol tcp or udp, a
// non-zero port, a valid owner and allow list when set, no (name, protocol,
// port) twice. It returns them sorted by name,
// protocol and port, so that the same set always compares equal.
func validateServices(in []api.Service) ([]api.Service, error) {
	if len(in) > api.MaxServices {
		return nil, fmt.Errorf("%d services, at most %d allowed", len(in), api.MaxServices)
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]api.Service, 0, len(in))
	for i, sv := range in {
		if err := api.ValidateName(sv.Name); err != nil {
			return nil, fmt.Errorf("[%d].name: %v", i, err)
		}
		if sv.Protocol != "tcp" && sv.Protocol != "udp" {
			return nil, fmt.Errorf("[%d].protocol %.20q: must be tcp or udp", i, sv.Protocol)
		}
		if sv.Port == 0 {
			return nil, fmt.Errorf("[%d].port: must be 1 to 65535", i)
		}
		if sv.Owner != "" {
			if err := api.ValidateName(sv.Owner); err != nil {
				return nil, fmt.Errorf("[%d].owner: %v", i, err)
			}
		}
		if sv.Allow != "" {
			if err := api.ValidateSelectors(sv.Allow); err != nil {
				return nil, fmt.Errorf("[%d].allow: %v", i, err)
			}
		}
		if slices.ContainsFunc(out, func(o api.Service) bool {
			return o.Name == sv.Name && o.Protocol == sv.Protocol && o.Port == sv.Port
		}) {
			return nil, fmt.Errorf("[%d]: %s %d/%s listed twice", i, sv.Name, sv.Port, sv.Protocol)
		}
		out = append(out, sv)
	}
	slices.SortFunc(out, func(a, b api.Service) int {
		switch {
		case a.Name != b.Name:
			return cmpString(a.Name, b.Name)
		case a.Protocol != b.Protocol:
			return cmpString(a.Protocol, b.Protocol)
		}
		return int(a.Port) - int(b.Port)
	})
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// dnsServers is the netmap's DNS server list: the configured servers, then
// the mesh address of every node (in name order) that holds DNSServerTag and
// publishes api.ServiceDNS on udp/53. Offline nodes stay listed, so that a
// registry restart (every node offline until its next heartbeat) does not
// make every node drop its resolver settings and add them back.
func dnsServers(configured []netip.Addr, nodes []*entry) []netip.Addr {
	out := slices.Clone(configured)
	for _, e := range nodes {
		if isDNSServer(&e.node) && !slices.Contains(out, e.node.IP) {
			out = append(out, e.node.IP)
		}
	}
	return out
}

func isDNSServer(n *api.Node) bool {
	// A token may carry the tag as "dns" or "tag:dns"; the policy treats
	// both alike.
	tagged := slices.ContainsFunc(n.Tags, func(t string) bool { return strings.TrimPrefix(t, "tag:") == DNSServerTag })
	return tagged &&
		slices.Contains(n.Services, api.Service{Name: api.ServiceDNS, Protocol: "udp", Port: 53})
}
