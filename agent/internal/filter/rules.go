package filter

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// ruleSet is a compiled api.Filter, indexed for lookup by source: for each
// distinct source prefix, what it may reach by protocol and port. A lookup
// costs one map access per distinct prefix length among the sources (one,
// when every source is a /32 as the registry sends them) plus a binary
// search among that source's port ranges. A ruleSet is never modified once
// published.
type ruleSet struct {
	version uint64
	names   []string         // by rule id
	accepts []*atomic.Uint64 // by rule id; shared with Filter.ruleCounters
	bits    []uint8          // distinct source prefix lengths, longest first
	bySrc   map[srcKey]*srcRules
}

type srcKey struct {
	addr uint32 // masked to bits
	bits uint8
}

// srcRules is what one source prefix may reach.
type srcRules struct {
	anyProto int32 // rule id allowing every protocol and port, or -1
	icmp     int32 // rule id allowing ICMP, or -1
	tcp, udp portSet
}

// portSet is a set of ports, each credited to a rule.
type portSet struct {
	all    int32       // rule id allowing every port, or -1
	ranges []portRange // sorted and disjoint
}

type portRange struct {
	first, last uint16
	rule        int32
}

func (s *portSet) lookup(port uint16) int32 {
	if s.all >= 0 {
		return s.all
	}
	r := s.ranges
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r[m].last < port {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(r) && r[lo].first <= port {
		return r[lo].rule
	}
	return -1
}

// match returns the id of a rule allowing p, which came from src, or -1.
func (rs *ruleSet) match(p *packet.Parsed, src uint32) int32 {
	if rs == nil {
		return -1
	}
	for _, bits := range rs.bits {
		sr := rs.bySrc[srcKey{addr: src & mask(bits), bits: bits}]
		if sr == nil {
			continue
		}
		if sr.anyProto >= 0 {
			return sr.anyProto
		}
		var id int32 = -1
		switch p.Proto {
		case packet.ProtoICMP:
			id = sr.icmp
		case packet.ProtoTCP:
			if p.HasPorts {
				id = sr.tcp.lookup(p.DstPort)
			} else if p.LaterFrag {
				id = sr.tcp.all
			}
		case packet.ProtoUDP:
			if p.HasPorts {
				id = sr.udp.lookup(p.DstPort)
			} else if p.LaterFrag {
				id = sr.udp.all
			}
		}
		if id >= 0 {
			return id
		}
	}
	return -1
}

func mask(bits uint8) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

// compile indexes f's rules. counter returns the accept counter of a rule
// name. Rules it cannot use (an unknown protocol, an IPv6 source, a bad
// port range) are left out, so they allow nothing, and reported in err;
// the rest still apply.
func compile(f *api.Filter, counter func(name string) *atomic.Uint64) (*ruleSet, error) {
	rs := &ruleSet{bySrc: map[srcKey]*srcRules{}}
	if f == nil {
		return rs, nil
	}
	rs.version = f.PolicyVersion
	var errs []error
	type pending struct{ tcp, udp []portRange }
	ports := map[srcKey]*pending{}
	for i, r := range f.Rules {
		if err := checkRule(r); err != nil {
			errs = append(errs, fmt.Errorf("rule %d (%q): %w", i, r.Name, err))
			continue
		}
		id := int32(len(rs.names))
		rs.names = append(rs.names, r.Name)
		rs.accepts = append(rs.accepts, counter(r.Name))
		for _, src := range r.Sources {
			src = src.Masked()
			k := srcKey{addr: ip4(src.Addr()), bits: uint8(src.Bits())}
			sr := rs.bySrc[k]
			if sr == nil {
				sr = &srcRules{anyProto: -1, icmp: -1, tcp: portSet{all: -1}, udp: portSet{all: -1}}
				rs.bySrc[k] = sr
				ports[k] = &pending{}
				if !slices.Contains(rs.bits, k.bits) {
					rs.bits = append(rs.bits, k.bits)
				}
			}
			pp := ports[k]
			addPorts := func(set *portSet, list *[]portRange) {
				if len(r.Ports) == 0 {
					if set.all < 0 {
						set.all = id
					}
					return
				}
				for _, pr := range r.Ports {
					*list = append(*list, portRange{first: pr.First, last: pr.Last, rule: id})
				}
			}
			switch r.Protocol {
			case "any":
				if len(r.Ports) == 0 {
					if sr.anyProto < 0 {
						sr.anyProto = id
					}
					continue
				}
				// "any" with ports: the port-bearing protocols on those ports.
				addPorts(&sr.tcp, &pp.tcp)
				addPorts(&sr.udp, &pp.udp)
			case "icmp":
				if sr.icmp < 0 {
					sr.icmp = id
				}
			case "tcp":
				addPorts(&sr.tcp, &pp.tcp)
			case "udp":
				addPorts(&sr.udp, &pp.udp)
			}
		}
	}
	for k, sr := range rs.bySrc {
		sr.tcp.ranges = disjoint(ports[k].tcp)
		sr.udp.ranges = disjoint(ports[k].udp)
	}
	slices.Sort(rs.bits)
	slices.Reverse(rs.bits)
	return rs, errors.Join(errs...)
}

func checkRule(r api.FilterRule) error {
	switch r.Protocol {
	case "tcp", "udp", "icmp", "any":
	default:
		return fmt.Errorf("unknown protocol %q", r.Protocol)
	}
	if len(r.Sources) == 0 {
		return errors.New("no sources")
	}
	for _, s := range r.Sources {
		if !s.IsValid() || !s.Addr().Is4() {
			return fmt.Errorf("source %v is not an IPv4 prefix", s)
		}
	}
	for _, p := range r.Ports {
		if p.First > p.Last {
			return fmt.Errorf("port range %d-%d is reversed", p.First, p.Last)
		}
	}
	return nil
}

// disjoint sorts ranges and merges overlapping and adjacent ones, keeping
// the rule of the first range of each merged run.
func disjoint(rs []portRange) []portRange {
	if len(rs) == 0 {
		return nil
	}
	slices.SortFunc(rs, func(a, b portRange) int {
		if a.first != b.first {
			return int(a.first) - int(b.first)
		}
		return int(b.last) - int(a.last)
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if uint32(r.first) <= uint32(last.last)+1 {
			last.last = max(last.last, r.last)
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}

func ip4(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
