package filter

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Flow timeouts: how long a tracked flow lives after its last packet (the
// values nebula uses).
const (
	TCPTimeout     = 12 * time.Minute
	UDPTimeout     = 3 * time.Minute
	DefaultTimeout = 10 * time.Minute
	// FragmentTimeout is how long the later fragments of a datagram whose
	// first fragment passed may follow it.
	FragmentTimeout = 5 * time.Second
)

// Defaults of Config.
const (
	DefaultMaxFlows     = 1 << 18
	DefaultMaxFragments = 4096
	DefaultLogPerSecond = 5
)

// Config tunes a Filter. Without Self the filter delivers nothing; the
// other fields have usable zero values.
type Config struct {
	// Self is the node's own mesh address. Only packets addressed to it
	// are delivered (SetSelf changes it).
	Self netip.Addr
	// MaxFlows bounds the connection table; DefaultMaxFlows when 0.
	MaxFlows int
	// MaxFlowsPerPeer bounds the flows with one peer address, both
	// directions together; MaxFlows/4 when 0.
	MaxFlowsPerPeer int
	// MaxFragments bounds the table of datagrams whose later fragments may
	// pass; DefaultMaxFragments when 0.
	MaxFragments int
	// TCPTimeout, UDPTimeout and DefaultTimeout (ICMP and other protocols)
	// override the package defaults when non-zero.
	TCPTimeout, UDPTimeout, DefaultTimeout time.Duration
	// Logger, when set and enabled for LogLevel, receives one record per
	// denied packet, at most LogPerSecond a second (DefaultLogPerSecond when
	// 0); the rest are only counted (Stats.LogSuppressed). Records carry
	// addresses, protocol, port and reason, nothing from the payload.
	Logger       *slog.Logger
	LogLevel     slog.Level // slog.LevelInfo when zero
	LogPerSecond int
	// Now returns a monotonic clock; time since creation when nil. Tests set
	// it to move time by hand.
	Now func() time.Duration
}

// Reason says why a packet was dropped.
type Reason uint8

// Drop reasons.
const (
	reasonNone      Reason = iota
	DropMalformed          // not a well-formed IPv4 packet
	DropIPv6               // IPv6: the mesh is IPv4
	DropNoRule             // no rule allows it and it belongs to no tracked flow
	DropFragment           // a later fragment of a datagram whose first fragment did not pass
	DropDestination        // addressed to another address than the node's own
	numReasons
)

var reasonNames = [numReasons]string{"", "malformed", "ipv6", "no_rule", "fragment", "destination"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists the drop reasons, for registering metrics.
func Reasons() []Reason {
	return []Reason{DropMalformed, DropIPv6, DropNoRule, DropFragment, DropDestination}
}

// Filter is a node's inbound packet filter. Its methods are safe for
// concurrent use.
type Filter struct {
	rules atomic.Pointer[ruleSet]
	self  atomic.Uint64 // selfValid | the node's address; 0 when unknown
	ct    *conntrack
	frags fragTable
	rtt   *flowRTT

	tcpTimeout, udpTimeout, defTimeout int64
	now                                func() time.Duration
	logger                             *slog.Logger
	logLevel                           slog.Level
	logLimit                           int64

	established atomic.Uint64 // accepted as part of a tracked flow
	related     atomic.Uint64 // ICMP errors about tracked flows
	fragsPassed atomic.Uint64
	drops       [numReasons]atomic.Uint64
	logSec      atomic.Int64
	logCount    atomic.Int64
	logDropped  atomic.Uint64

	mu           sync.Mutex // guards the fields below
	ruleCounters map[string]*atomic.Uint64
}

// New returns a Filter with no rules: until SetFilter, only replies to
// the node's own connections pass.
func New(cfg Config) *Filter {
	pick := func(v, def time.Duration) int64 {
		if v > 0 {
			return int64(v)
		}
		return int64(def)
	}
	f := &Filter{
		ct:           newConntrack(cmpOr(cfg.MaxFlows, DefaultMaxFlows), cfg.MaxFlowsPerPeer),
		rtt:          newFlowRTT(),
		tcpTimeout:   pick(cfg.TCPTimeout, TCPTimeout),
		udpTimeout:   pick(cfg.UDPTimeout, UDPTimeout),
		defTimeout:   pick(cfg.DefaultTimeout, DefaultTimeout),
		now:          cfg.Now,
		logger:       cfg.Logger,
		logLevel:     cfg.LogLevel,
		logLimit:     int64(cmpOr(cfg.LogPerSecond, DefaultLogPerSecond)),
		ruleCounters: map[string]*atomic.Uint64{},
	}
	f.frags.init(cmpOr(cfg.MaxFragments, DefaultMaxFragments))
	f.SetSelf(cfg.Self)
	if f.now == nil {
		start := time.Now()
		f.now = func() time.Duration { return time.Since(start) }
	}
	if f.logger != nil {
		f.logger = f.logger.With("component", "filter")
	}
	empty, _ := compile(nil, nil)
	f.rules.Store(empty)
	return f
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// SetFilter replaces the rules at once; nil means no policy (nothing
// allowed but replies to the node's own connections). Tracked flows the
// node opened stay; flows a peer opened are held to the new rules from
// their next packet on. Rules that cannot be used (unknown protocol,
// non-IPv4 source, reversed port range) allow nothing and are reported in
// the error; the other rules apply regardless.
func (f *Filter) SetFilter(af *api.Filter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs, err := compile(af, f.counterLocked)
	f.rules.Store(rs)
	f.rtt.setPolicyPorts(rs)
	return err
}

func (f *Filter) counterLocked(name string) *atomic.Uint64 {
	c := f.ruleCounters[name]
	if c == nil {
		c = new(atomic.Uint64)
		f.ruleCounters[name] = c
	}
	return c
}

// SetSelf sets the node's own mesh address, the only destination the
// filter lets through. An address that is not IPv4 lets nothing through.
func (f *Filter) SetSelf(addr netip.Addr) {
	var v uint64
	if addr.Is4() {
		v = selfValid | uint64(ip4(addr))
	}
	f.self.Store(v)
}

// selfValid marks Filter.self as set; the low 32 bits hold the address.
const selfValid = 1 << 32

// isSelf reports whether dst is the node's own address.
func (f *Filter) isSelf(dst uint32) bool { return f.self.Load() == selfValid|uint64(dst) }

// PolicyVersion is the version of the rules in force (0 without a policy).
func (f *Filter) PolicyVersion() uint64 { return f.rules.Load().version }

func (f *Filter) timeout(proto uint8) int64 {
	switch proto {
	case packet.ProtoTCP:
		return f.tcpTimeout
	case packet.ProtoUDP:
		return f.udpTimeout
	}
	return f.defTimeout
}

// Inbound reports whether a packet that arrived from the mesh, parsed into
// p, may be delivered to the node. The filter neither keeps nor modifies p
// or its packet.
func (f *Filter) Inbound(p *packet.Parsed) bool {
	if r := unjudgeable(p); r != reasonNone {
		return f.drop(r, p)
	}
	src, dst := ip4(p.Src), ip4(p.Dst)
	if !f.isSelf(dst) {
		// Only the node's own address: not its other interfaces, nor
		// what it routes (it would forward the packet there).
		return f.drop(DropDestination, p)
	}
	now := int64(f.now())
	if p.LaterFrag {
		if f.frags.allowed(fragKey{src: src, dst: dst, id: p.ID, proto: p.Proto}, now) {
			f.fragsPassed.Add(1)
			return true
		}
		rs := f.rules.Load()
		if id := rs.match(p, src); id >= 0 {
			rs.count(id)
			return true
		}
		return f.drop(DropFragment, p)
	}
	ok := f.inboundFirst(p, src, dst, now)
	if ok && p.FirstFrag {
		f.frags.add(fragKey{src: src, dst: dst, id: p.ID, proto: p.Proto}, now, now+int64(FragmentTimeout))
	}
	if !ok {
		return f.drop(DropNoRule, p)
	}
	return true
}

// unjudgeable returns the reason the filter cannot judge p (not IPv4, or
// its transport header cut short), or reasonNone.
func unjudgeable(p *packet.Parsed) Reason {
	switch {
	case p.Version == 6:
		return DropIPv6
	case p.Version != 4 || p.TransportShort:
		return DropMalformed
	}
	return reasonNone
}

func (f *Filter) inboundFirst(p *packet.Parsed, src, dst uint32, now int64) bool {
	key, tracked := inboundKey(p, src, dst)
	exp := now + f.timeout(p.Proto)
	known := false // a live peer-opened flow, already refreshed
	if tracked {
		found, inbound := f.ct.refresh(key, now, exp)
		if found && !inbound {
			f.established.Add(1)
			if p.Proto == packet.ProtoTCP && p.TCPFlags&(packet.TCPSyn|packet.TCPAck) == packet.TCPSyn|packet.TCPAck {
				f.synACK(key, now)
			}
			return true
		}
		// A peer-opened flow is refreshed even when the rules no longer
		// allow it: it then stays marked as the peer's, so the node's own
		// packets on it cannot pass it off as a flow the node opened.
		known = found
	}
	if q := &p.Quoted; q.OK {
		// An ICMP error quoting a packet the node sent (src is the node,
		// dst the peer it sent to), from that peer.
		if q.Src == p.Dst && q.Dst == p.Src &&
			f.ct.exists(flowKey{peer: src, addr: dst, local: q.SrcPort, remote: q.DstPort, proto: q.Proto}, now) {
			f.related.Add(1)
			return true
		}
	}
	rs := f.rules.Load()
	id := rs.match(p, src)
	if id < 0 {
		return false
	}
	rs.count(id)
	if tracked && !known {
		f.ct.upsert(key, now, exp, true, true)
	}
	return true
}

// isEcho reports whether p is an ICMP echo request or reply.
func isEcho(p *packet.Parsed) bool {
	return p.Proto == packet.ProtoICMP && p.HasICMP &&
		(p.ICMPType == packet.ICMPEchoRequest || p.ICMPType == packet.ICMPEchoReply)
}

// inboundKey is the flow of an inbound packet from src to dst, and whether
// it has one (TCP, UDP and ICMP echo do).
func inboundKey(p *packet.Parsed, src, dst uint32) (flowKey, bool) {
	if !p.HasPorts && !isEcho(p) {
		return flowKey{}, false
	}
	return flowKey{peer: src, addr: dst, local: p.DstPort, remote: p.SrcPort, proto: p.Proto}, true
}

// Outbound tells the filter about a packet the node sends into the mesh,
// parsed into p, so that the replies to the connections it opens pass. A
// TCP SYN, a UDP datagram or an ICMP echo request opens a flow; other
// packets only keep tracked flows alive. Neither p nor its packet is kept
// or modified.
func (f *Filter) Outbound(p *packet.Parsed) {
	if unjudgeable(p) != reasonNone || p.LaterFrag {
		return
	}
	src := ip4(p.Src)
	if !f.isSelf(src) {
		// Replies to another source address than the node's would not
		// pass Inbound: such a packet opens no flow.
		return
	}
	var create bool
	switch {
	case p.Proto == packet.ProtoTCP:
		create = p.TCPFlags&(packet.TCPSyn|packet.TCPAck) == packet.TCPSyn
	case p.Proto == packet.ProtoUDP:
		create = true
	case isEcho(p):
		create = p.ICMPType == packet.ICMPEchoRequest
	default:
		return
	}
	now := int64(f.now())
	key := flowKey{peer: ip4(p.Dst), addr: src, local: p.SrcPort, remote: p.DstPort, proto: p.Proto}
	f.ct.upsert(key, now, now+f.timeout(p.Proto), false, create)
}

func (rs *ruleSet) count(id int32) { rs.accepts[id].Add(1) }

func (f *Filter) drop(r Reason, p *packet.Parsed) bool {
	f.drops[r].Add(1)
	if f.logger != nil && f.logger.Enabled(context.Background(), f.logLevel) && f.logAllowed() {
		f.logger.Log(context.Background(), f.logLevel, "denied",
			"reason", r.String(),
			"src", p.Src, "dst", p.Dst,
			"proto", p.Proto, "dport", p.DstPort)
	}
	return false
}

// logAllowed is a per-second budget of log records.
func (f *Filter) logAllowed() bool {
	sec := int64(f.now()) / int64(time.Second)
	if old := f.logSec.Load(); old != sec && f.logSec.CompareAndSwap(old, sec) {
		f.logCount.Store(0)
	}
	if f.logCount.Add(1) <= f.logLimit {
		return true
	}
	f.logDropped.Add(1)
	return false
}

// Stats is a snapshot of the filter's counters, for metrics. Counters only
// grow; rule counters outlive the rules they count.
type Stats struct {
	PolicyVersion uint64
	Flows         int               // tracked flows, including expired ones not yet swept
	Evicted       uint64            // flows evicted from a full table or from a peer's full share
	PeerLimited   uint64            // of Evicted: flows a peer lost to its own new ones, holding its share
	Established   uint64            // packets accepted as replies in a tracked flow
	Related       uint64            // ICMP errors accepted for a tracked flow
	Fragments     uint64            // later fragments accepted after their first fragment
	RuleAccepts   map[string]uint64 // packets accepted by each rule name
	Drops         map[Reason]uint64
	FlowRTT       []FlowRTT // TCP handshake round trip times by peer and port (flowrtt.go)
	LogSuppressed uint64    // denied packets not logged for the rate limit
}

// Stats returns the counters. It allocates; call it when scraping.
func (f *Filter) Stats() Stats {
	s := Stats{
		PolicyVersion: f.PolicyVersion(),
		Flows:         f.ct.len(),
		Evicted:       f.ct.evicted.Load(),
		PeerLimited:   f.ct.peerCapped.Load(),
		Established:   f.established.Load(),
		Related:       f.related.Load(),
		Fragments:     f.fragsPassed.Load(),
		RuleAccepts:   map[string]uint64{},
		Drops:         map[Reason]uint64{},
		LogSuppressed: f.logDropped.Load(),
		FlowRTT:       f.rtt.stats(),
	}
	for _, r := range Reasons() {
		s.Drops[r] = f.drops[r].Load()
	}
	f.mu.Lock()
	for name, c := range f.ruleCounters {
		s.RuleAccepts[name] = c.Load()
	}
	f.mu.Unlock()
	return s
}
