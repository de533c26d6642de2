package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// resolveGroups expands every group into the nodes and tags it stands for,
// reporting cycles at the line of the group that closes them.
func (ps *parser) resolveGroups(pol *Policy) {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	byName := map[string]*Group{}
	for i := range pol.Groups {
		byName[pol.Groups[i].Name] = &pol.Groups[i]
	}
	reported := map[string]bool{}
	var visit func(g *Group, stack []string)
	visit = func(g *Group, stack []string) {
		state[g.Name] = visiting
		stack = append(stack, g.Name)
		for _, m := range g.Members {
			switch m.Kind {
			case SelectAll:
				g.set.all = true
			case SelectNode:
				g.set.addName(m.Name)
			case SelectTag:
				g.set.addTag(m.Name)
			case SelectGroup:
				sub, ok := byName[m.Name]
				if !ok {
					continue // reported by selector, or the group itself was invalid
				}
				switch state[sub.Name] {
				case visiting:
					i := slices.Index(stack, sub.Name)
					cycle := append(slices.Clone(stack[i:]), sub.Name)
					if !reported[sub.Name] {
						reported[sub.Name] = true
						ps.errs = append(ps.errs, &Error{File: ps.file, Line: sub.Line, Path: "groups." + sub.Name,
							Msg: "groups form a cycle: " + strings.Join(cycle, " -> ")})
					}
					continue
				case unvisited:
					if len(stack) >= MaxGroupDepth {
						ps.errs = append(ps.errs, &Error{File: ps.file, Line: g.Line, Path: "groups." + g.Name,
							Msg: fmt.Sprintf("groups nested more than %d deep", MaxGroupDepth)})
						continue
					}
					visit(sub, stack)
				}
				g.set.add(sub.set)
			}
		}
		state[g.Name] = done
	}
	for i := range pol.Groups {
		if state[pol.Groups[i].Name] == unvisited {
			visit(&pol.Groups[i], nil)
		}
	}
}

// resolve turns selectors into the set of nodes they stand for.
func resolve(pol *Policy, sels []Selector) nodeSet {
	var s nodeSet
	for _, sel := range sels {
		switch sel.Kind {
		case SelectAll:
			s.all = true
		case SelectNode:
			s.addName(sel.Name)
		case SelectTag:
			s.addTag(sel.Name)
		case SelectGroup:
			if g, ok := pol.Group(sel.Name); ok {
				s.add(g.set)
			}
		}
	}
	return s
}

func (ps *parser) rules(pol *Policy, n *yaml.Node, path string) []Rule {
	items, ok := ps.list(n, path, false)
	if !ok {
		return nil
	}
	var rules []Rule
	names := map[string]int{}
	for i, it := range items {
		p := index(path, i)
		f, _, ok := ps.mapping(it, p, "name", "description", "from", "to", "proto", "ports")
		if f == nil {
			continue
		}
		r := Rule{Line: it.Line, Name: fmt.Sprintf("rule-%d", i+1)}
		if fl, has := f["name"]; has {
			if v, good := ps.scalar(fl.val, join(p, "name")); good {
				if err := validateRuleName(v); err != nil {
					ps.errorf(fl.val, join(p, "name"), "%v", err)
					ok = false
				}
				r.Name = v
			} else {
				ok = false
			}
		}
		if prev, dup := names[r.Name]; dup {
			ps.errorf(it, p, "rule name %q is already used by rules[%d]", r.Name, prev)
			ok = false
		}
		names[r.Name] = i
		if fl, has := f["description"]; has {
			if _, good := ps.scalar(fl.val, join(p, "description")); !good {
				ok = false
			}
		}
		for _, side := range []struct {
			key string
			dst *[]Selector
		}{{"from", &r.From}, {"to", &r.To}} {
			fl, has := f[side.key]
			if !has {
				ps.errorf(it, p, "missing %q", side.key)
				ok = false
				continue
			}
			sp := join(p, side.key)
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
		if fl, has := f["proto"]; has {
			protos, good := ps.protocols(fl.val, join(p, "proto"))
			ok = ok && good
			r.Protocols = protos
		} else {
			ps.errorf(it, p, `missing "proto" (tcp, udp, icmp or any)`)
			ok = false
		}
		if fl, has := f["ports"]; has {
			pp := join(p, "ports")
			ports, good := ps.ports(fl.val, pp)
			ok = ok && good
			r.Ports = ports
			for _, proto := range r.Protocols {
				if proto == ProtoICMP || proto == ProtoAny {
					ps.errorf(fl.key, pp, "ports apply only to tcp and udp, not to %s", proto)
					ok = false
					break
				}
			}
		}
		if !ok {
			continue
		}
		r.from = resolve(pol, r.From)
		r.to = resolve(pol, r.To)
		rules = append(rules, r)
	}
	return rules
}

func validateRuleName(s string) error {
	if len(s) > MaxRuleName {
		return fmt.Errorf("rule name %.20q...: longer than %d characters", s, MaxRuleName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' && c != '.' {
			return fmt.Errorf("rule name %q: only letters, digits, '-', '_' and '.' are allowed", s)
		}
	}
	return nil
}

func (ps *parser) protocols(n *yaml.Node, path string) ([]string, bool) {
	items, ok := ps.list(n, path, true)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		ps.errorf(n, path, "must name at least one protocol (tcp, udp, icmp or any)")
		return nil, false
	}
	var protos []string
	for i, it := range items {
		ip := itemPath(n, path, i)
		v, good := ps.scalar(it, ip)
		if !good {
			ok = false
			continue
		}
		v = strings.ToLower(v)
		switch v {
		case ProtoTCP, ProtoUDP, ProtoICMP, ProtoAny:
		default:
			ps.errorf(it, ip, "unknown protocol %q (want tcp, udp, icmp or any)", v)
			ok = false
			continue
		}
		if slices.Contains(protos, v) {
			ps.errorf(it, ip, "protocol %q listed twice", v)
			ok = false
			continue
		}
		protos = append(protos, v)
	}
	if slices.Contains(protos, ProtoAny) {
		protos = []string{ProtoAny} // any covers the rest
	}
	slices.Sort(protos)
	return protos, ok
}

func (ps *parser) ports(n *yaml.Node, path string) ([]api.PortRange, bool) {
	items, ok := ps.list(n, path, true)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		ps.errorf(n, path, "must list at least one port; leave ports out for every port")
		return nil, false
	}
	var ranges []api.PortRange
	for i, it := range items {
		ip := itemPath(n, path, i)
		v, good := ps.scalar(it, ip)
		if !good {
			ok = false
			continue
		}
		r, err := ParsePortRange(v)
		if err != nil {
			ps.errorf(it, ip, "%v", err)
			ok = false
			continue
		}
		ranges = append(ranges, r)
	}
	return MergePorts(ranges), ok
}

// ParsePortRange parses "80" or "8000-8100" (1 to 65535, inclusive).
func ParsePortRange(s string) (api.PortRange, error) {
	first, last, isRange := strings.Cut(s, "-")
	a, err := parsePort(first)
	if err != nil {
		if isRange {
			return api.PortRange{}, fmt.Errorf("invalid port range %q", s)
		}
		return api.PortRange{}, fmt.Errorf("invalid port %q", s)
	}
	if !isRange {
		return api.PortRange{First: a, Last: a}, nil
	}
	b, err := parsePort(last)
	if err != nil || b < a {
		return api.PortRange{}, fmt.Errorf("invalid port range %q", s)
	}
	return api.PortRange{First: a, Last: b}, nil
}

func parsePort(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return uint16(n), nil
}

// MergePorts sorts ranges and merges those that overlap or touch.
func MergePorts(rs []api.PortRange) []api.PortRange {
	if len(rs) == 0 {
		return nil
	}
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b api.PortRange) int {
		if a.First != b.First {
			return int(a.First) - int(b.First)
		}
		return int(a.Last) - int(b.Last)
	})
	merged := out[:1]
	for _, r := range out[1:] {
		last := &merged[len(merged)-1]
		if uint32(r.First) <= uint32(last.Last)+1 {
			last.Last = max(last.Last, r.Last)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

func (ps *parser) testNodes(n *yaml.Node, path string) []TestNode {
	f, order, _ := ps.mapping(n, path)
	var out []TestNode
	for _, name := range order {
		fl := f[name]
		p := join(path, name)
		nn := normNode(name)
		if err := api.ValidateName(nn); err != nil {
			ps.errorf(fl.key, p, "invalid node name: %v", err)
			continue
		}
		tn := TestNode{Name: nn, Line: fl.key.Line, Tags: []string{}}
		if fl.val.Kind == yaml.ScalarNode && fl.val.Tag == "!!null" {
			out = append(out, tn) // a node without tags
			continue
		}
		items, ok := ps.list(fl.val, p, false)
		if !ok {
			continue
		}
		for i, it := range items {
			s, good := ps.selector(it, index(p, i))
			if !good {
				ok = false
				continue
			}
			if s.Kind != SelectTag {
				ps.errorf(it, index(p, i), "test nodes list tags (tag:NAME), not %q", s.String())
				ok = false
				continue
			}
			tn.Tags = append(tn.Tags, s.Name)
		}
		if ok {
			out = append(out, tn)
		}
	}
	return out
}

func (ps *parser) tests(pol *Policy, n *yaml.Node, path string) []Test {
	items, ok := ps.list(n, path, false)
	if !ok {
		return nil
	}
	var tests []Test
	for i, it := range items {
		p := index(path, i)
		f, _, ok := ps.mapping(it, p, "name", "from", "accept", "deny", "storage_accept", "storage_deny", "nfs_accept", "nfs_deny")
		if f == nil {
			continue
		}
		t := Test{Line: it.Line, Name: p}
		if fl, has := f["name"]; has {
			v, good := ps.scalar(fl.val, join(p, "name"))
			ok = ok && good
			t.Name = v
		}
		if fl, has := f["from"]; has {
			fp := join(p, "from")
			if v, good := ps.scalar(fl.val, fp); good {
				t.From = normNode(v)
				if err := api.ValidateName(t.From); err != nil {
					ps.errorf(fl.val, fp, "tests name a node: %v", err)
					ok = false
				}
			} else {
				ok = false
			}
		} else {
			ps.errorf(it, p, `missing "from"`)
			ok = false
		}
		for _, side := range []struct {
			key   string
			dst   *[]Target
			parse func(string) (Target, error)
		}{{"accept", &t.Accept, ParseTarget}, {"deny", &t.Deny, ParseTarget},
			{"storage_accept", &t.StorageAccept, ParseStorageTarget}, {"storage_deny", &t.StorageDeny, ParseStorageTarget},
			{"nfs_accept", &t.NFSAccept, ParseNFSTarget}, {"nfs_deny", &t.NFSDeny, ParseNFSTarget}} {
			fl, has := f[side.key]
			if !has {
				continue
			}
			sp := join(p, side.key)
			targets, good := ps.list(fl.val, sp, true)
			if !good {
				ok = false
				continue
			}
			for j, tn := range targets {
				tp := itemPath(fl.val, sp, j)
				v, good := ps.scalar(tn, tp)
				if !good {
					ok = false
					continue
				}
				tg, err := side.parse(v)
				if err != nil {
					ps.errorf(tn, tp, "%v", err)
					ok = false
					continue
				}
				tg.Line = tn.Line
				*side.dst = append(*side.dst, tg)
			}
		}
		if ok && len(t.Accept)+len(t.Deny)+len(t.StorageAccept)+len(t.StorageDeny)+len(t.NFSAccept)+len(t.NFSDeny) == 0 {
			ps.errorf(it, p, `a test needs "accept", "deny", "storage_accept", "storage_deny", "nfs_accept" or "nfs_deny" targets`)
			ok = false
		}
		if ok {
			tests = append(tests, t)
		}
	}
	return tests
}

// ParseTarget parses a test target: "NODE:PORT" (tcp), "NODE:PORT/tcp",
// "NODE:PORT/udp" or "NODE/icmp".
func ParseTarget(s string) (Target, error) {
	t := Target{Spec: s}
	hostPort, proto, hasProto := strings.Cut(s, "/")
	proto = strings.ToLower(proto)
	host, port, hasPort := strings.Cut(hostPort, ":")
	t.Node = normNode(host)
	if err := api.ValidateName(t.Node); err != nil {
		return Target{}, fmt.Errorf("invalid target %q: %v", s, err)
	}
	switch {
	case !hasProto:
		proto = ProtoTCP
	case proto == ProtoTCP || proto == ProtoUDP || proto == ProtoICMP:
	default:
		return Target{}, fmt.Errorf("invalid target %q: protocol must be tcp, udp or icmp", s)
	}
	t.Protocol = proto
	if proto == ProtoICMP {
		if hasPort {
			return Target{}, fmt.Errorf("invalid target %q: icmp has no port (write NODE/icmp)", s)
		}
		return t, nil
	}
	if !hasPort {
		return Target{}, fmt.Errorf("invalid target %q: want NODE:PORT[/tcp|/udp] or NODE/icmp", s)
	}
	p, err := parsePort(port)
	if err != nil {
		return Target{}, fmt.Errorf("invalid target %q: %v", s, err)
	}
	t.Port = p
	return t, nil
}
