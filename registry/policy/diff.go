package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// NodeDiff is how one node's inbound rules change.
type NodeDiff struct {
	Node    string
	Changes []string // "+ ...", "- ..." or "~ ...", sorted by rule and protocol
}

// Diff compiles old and new for nodes and reports, for each node whose
// inbound rules change, what changes: rules added or removed, sources added
// to or removed from a rule, and ports changed. Either policy may be nil
// (no policy: the node accepts nothing new). Nodes come out sorted by name,
// so the output is stable.
func Diff(old, new *Policy, nodes []api.Node) []NodeDiff {
	names := make(map[netip.Addr]string, len(nodes))
	for _, n := range nodes {
		names[n.IP] = normNode(n.Name)
	}
	compile := func(p *Policy) map[string]*api.Filter {
		if p == nil {
			return nil
		}
		return Compile(p, nodes, 0)
	}
	before, after := compile(old), compile(new)
	var out []NodeDiff
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b api.Node) int { return strings.Compare(normNode(a.Name), normNode(b.Name)) })
	for _, n := range sorted {
		name := normNode(n.Name)
		var changes []string
		switch {
		case before == nil && after == nil:
			continue
		case before == nil:
			changes = append(changes, "~ policy applies (before: no policy, nothing accepted)")
		case after == nil:
			changes = append(changes, "~ policy removed (after: no policy, nothing accepted)")
		}
		changes = append(changes, diffRules(rulesOf(before, name), rulesOf(after, name), names)...)
		if len(changes) > 0 {
			out = append(out, NodeDiff{Node: name, Changes: changes})
		}
	}
	return out
}

func rulesOf(m map[string]*api.Filter, node string) []api.FilterRule {
	if f := m[node]; f != nil {
		return f.Rules
	}
	return nil
}

type ruleKey struct{ name, proto string }

func diffRules(before, after []api.FilterRule, names map[netip.Addr]string) []string {
	b := map[ruleKey]api.FilterRule{}
	a := map[ruleKey]api.FilterRule{}
	var keys []ruleKey
	for _, r := range before {
		k := ruleKey{r.Name, r.Protocol}
		b[k] = r
		keys = append(keys, k)
	}
	for _, r := range after {
		k := ruleKey{r.Name, r.Protocol}
		a[k] = r
		if _, ok := b[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y ruleKey) int {
		if c := strings.Compare(x.name, y.name); c != 0 {
			return c
		}
		return strings.Compare(x.proto, y.proto)
	})
	var out []string
	for _, k := range keys {
		rb, inB := b[k]
		ra, inA := a[k]
		switch {
		case !inA:
			out = append(out, fmt.Sprintf("- %s: %s from %s", k.name, service(rb), sources(rb.Sources, names)))
		case !inB:
			out = append(out, fmt.Sprintf("+ %s: %s from %s", k.name, service(ra), sources(ra.Sources, names)))
		default:
			if !slices.Equal(rb.Ports, ra.Ports) {
				out = append(out, fmt.Sprintf("~ %s: %s -> %s", k.name, service(rb), service(ra)))
			}
			added, removed := setDiff(ra.Sources, rb.Sources), setDiff(rb.Sources, ra.Sources)
			if len(removed) > 0 {
				out = append(out, fmt.Sprintf("- %s: %s from %s", k.name, service(ra), sources(removed, names)))
			}
			if len(added) > 0 {
				out = append(out, fmt.Sprintf("+ %s: %s from %s", k.name, service(ra), sources(added, names)))
			}
		}
	}
	return out
}

// setDiff returns the prefixes in x that are not in y.
func setDiff(x, y []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range x {
		if !slices.Contains(y, p) {
			out = append(out, p)
		}
	}
	return out
}

// service renders a rule's protocol and ports: "tcp/22,8000-8100", "icmp",
// "udp/*".
func service(r api.FilterRule) string {
	if r.Protocol == ProtoICMP || r.Protocol == ProtoAny {
		return r.Protocol
	}
	return r.Protocol + "/" + FormatPorts(r.Ports)
}

// FormatPorts renders port ranges as "22,8000-8100", or "*" for none (every
// port).
func FormatPorts(rs []api.PortRange) string {
	if len(rs) == 0 {
		return "*"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		if r.First == r.Last {
			parts[i] = fmt.Sprint(r.First)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.First, r.Last)
		}
	}
	return strings.Join(parts, ",")
}

func sources(ps []netip.Prefix, names map[netip.Addr]string) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		if n, ok := names[p.Addr()]; ok && p.Bits() == 32 {
			parts[i] = n
		} else {
			parts[i] = p.String()
		}
	}
	return strings.Join(parts, ", ")
}

// FormatDiff renders a diff for people, one node per paragraph, or
// "no changes".
func FormatDiff(d []NodeDiff) string {
	if len(d) == 0 {
		return "no changes\n"
	}
	var b strings.Builder
	for _, nd := range d {
		fmt.Fprintf(&b, "%s:\n", nd.Node)
		for _, c := range nd.Changes {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	return b.String()
}
