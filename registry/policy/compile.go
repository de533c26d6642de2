package policy

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Compile turns the policy into each node's inbound filter, keyed by node
// name. A node's filter holds only the rules whose destination includes it
// (one FilterRule per policy rule and protocol, named after the policy
// rule), with the sources resolved to the /32s of the other nodes the rule's
// "from" names, sorted and deduplicated, and the ports merged. A rule with
// no source node in the mesh yet yields nothing, and a node never appears
// among its own sources (its traffic to itself does not cross the mesh).
// Every node in nodes gets a non-nil Filter, with no rules when nothing may
// reach it. Nodes without a valid IPv4 address get a filter but are never a
// source. A node publishing the storage service's credentials API also gets
// every member's storage grants (Filter.Storage), and a node publishing
// NFS every member's nfs grants (Filter.NFS) when the policy has an nfs
// section.
func Compile(pol *Policy, nodes []api.Node, version uint64) map[string]*api.Filter {
	out := make(map[string]*api.Filter, len(nodes))
	for _, n := range nodes {
		out[normNode(n.Name)] = &api.Filter{PolicyVersion: version, Rules: []api.FilterRule{}}
	}
	for _, r := range pol.Rules {
		var srcs []netip.Addr
		for _, n := range nodes {
			if n.IP.Is4() && r.from.contains(normNode(n.Name), n.Tags) {
				srcs = append(srcs, n.IP)
			}
		}
		if len(srcs) == 0 {
			continue
		}
		slices.SortFunc(srcs, netip.Addr.Compare)
		srcs = slices.Compact(srcs)
		for _, n := range nodes {
			name := normNode(n.Name)
			if !r.to.contains(name, n.Tags) {
				continue
			}
			prefixes := make([]netip.Prefix, 0, len(srcs))
			for _, a := range srcs {
				if a != n.IP {
					prefixes = append(prefixes, netip.PrefixFrom(a, 32))
				}
			}
			if len(prefixes) == 0 {
				continue
			}
			f := out[name]
			for _, proto := range r.Protocols {
				f.Rules = append(f.Rules, api.FilterRule{
					Name:     r.Name,
					Sources:  prefixes,
					Protocol: proto,
					Ports:    slices.Clone(r.Ports),
				})
			}
		}
	}
	compileDocker(pol, nodes, out)
	compileStorage(pol, nodes, out)
	compileNFS(pol, nodes, out)
	for _, f := range out {
		slices.SortFunc(f.Rules, func(a, b api.FilterRule) int {
			if c := strings.Compare(a.Name, b.Name); c != 0 {
				return c
			}
			return strings.Compare(a.Protocol, b.Protocol)
		})
	}
	return out
}
