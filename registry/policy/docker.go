package policy

import (
	"net/netip"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Docker is the policy's docker section: the ceiling on who may reach the
// containers that tunnelmesh-dockerwatch exposes (services published with
// Owner api.ServiceOwnerDocker). A container's tunnelmesh.allow label
// (Service.Allow) narrows it for that container, never widens it. Without a
// docker section no container port is opened by it; ordinary rules still
// apply.
//
//	docker:
//	  from: [group:devs, tag:web]   # who may reach containers, at most
//	  to: [tag:docker]              # whose containers (optional: every node)
//	  ports: [80, 8000-9000]        # which ports (optional: every port)
type Docker struct {
	From  []Selector
	To    []Selector      // empty: every node
	Ports []api.PortRange // empty: every port
	Line  int

	from, to nodeSet
}

func (ps *parser) docker(pol *Policy, n *yaml.Node, path string) *Docker {
	f, _, ok := ps.mapping(n, path, "from", "to", "ports")
	if f == nil {
		return nil
	}
	d := &Docker{Line: n.Line}
	for _, side := range []struct {
		key      string
		dst      *[]Selector
		required bool
	}{{"from", &d.From, true}, {"to", &d.To, false}} {
		fl, has := f[side.key]
		if !has {
			if side.required {
				ps.errorf(n, path, "missing %q", side.key)
				ok = false
			}
			continue
		}
		sp := join(path, side.key)
		sels, good := ps.list(fl.val, sp, true)
		if !good {
			ok = false
			continue
		}
		if len(sels) == 0 {
			ps.errorf(fl.val, sp, "must name at least one node, tag or group")
			ok = false
		}
		for j, sn := range sels {
			s, good := ps.selector(sn, itemPath(fl.val, sp, j))
			if !good {
				ok = false
				continue
			}
			*side.dst = append(*side.dst, s)
		}
	}
	if fl, has := f["ports"]; has {
		ports, good := ps.ports(fl.val, join(path, "ports"))
		ok = ok && good
		d.Ports = ports
	}
	if !ok {
		return nil
	}
	d.from = resolve(pol, d.From)
	if len(d.To) == 0 {
		d.to = nodeSet{all: true}
	} else {
		d.to = resolve(pol, d.To)
	}
	return d
}

// allowSet resolves a Service.Allow list against pol. Selectors the policy
// does not define (an unknown group) match nothing, so a label never widens
// the ceiling; a malformed list matches nothing.
func allowSet(pol *Policy, allow string) nodeSet {
	if api.ValidateSelectors(allow) != nil {
		return nodeSet{}
	}
	var s nodeSet
	for _, it := range strings.Split(allow, ",") {
		kind, name, ok := strings.Cut(it, ":")
		switch {
		case it == "*":
			s.all = true
		case !ok:
			s.addName(normNode(it))
		case kind == "tag":
			s.addTag(name)
		case kind == "group":
			if g, found := pol.Group(name); found {
				s.add(g.set)
			}
		}
	}
	return s
}

func portsContain(rs []api.PortRange, p uint16) bool {
	return len(rs) == 0 || slices.ContainsFunc(rs, func(r api.PortRange) bool { return r.First <= p && p <= r.Last })
}

// dockerAllows reports whether the docker section lets src reach service s
// of dst.
func (pol *Policy) dockerAllows(src, dst api.Node, s api.Service) bool {
	d := pol.Docker
	sn, dn := normNode(src.Name), normNode(dst.Name)
	if d == nil || sn == dn || s.Owner != api.ServiceOwnerDocker || (s.Protocol != ProtoTCP && s.Protocol != ProtoUDP) ||
		s.Port == 0 || !portsContain(d.Ports, s.Port) || !d.to.contains(dn, dst.Tags) || !d.from.contains(sn, src.Tags) {
		return false
	}
	return s.Allow == "" || allowSet(pol, s.Allow).contains(sn, src.Tags)
}

// dockerAllowed reports whether the docker section lets src reach dst on
// proto and port, and names the rule as Compile does.
func (pol *Policy) dockerAllowed(src, dst api.Node, proto string, port uint16) (string, bool) {
	for _, s := range dst.Services {
		if s.Protocol == proto && s.Port == port && pol.dockerAllows(src, dst, s) {
			return "docker:" + s.Name, true
		}
	}
	return "", false
}

// compileDocker adds to out, for every docker service of a node the docker
// section covers, a rule "docker:<service>" opening exactly its port and
// protocol to the nodes both the section's from and the service's Allow
// (when set) name.
func compileDocker(pol *Policy, nodes []api.Node, out map[string]*api.Filter) {
	if pol.Docker == nil {
		return
	}
	for _, n := range nodes {
		for _, s := range n.Services {
			var srcs []netip.Prefix
			for _, src := range nodes {
				if src.IP.Is4() && src.IP != n.IP && pol.dockerAllows(src, n, s) {
					srcs = append(srcs, netip.PrefixFrom(src.IP, 32))
				}
			}
			if len(srcs) == 0 {
				continue
			}
			slices.SortFunc(srcs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
			srcs = slices.Compact(srcs)
			f := out[normNode(n.Name)]
			f.Rules = append(f.Rules, api.FilterRule{
				Name:     "docker:" + s.Name,
				Sources:  srcs,
				Protocol: s.Protocol,
				Ports:    []api.PortRange{{First: s.Port, Last: s.Port}},
			})
		}
	}
}
