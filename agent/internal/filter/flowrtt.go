package filter

import (
	"net/netip"
	"sync"
	"time"
)

// TCP handshake round trip times of the connections the node opens, seen
// by the connection tracker: from the node's first SYN of a connection
// (Outbound) to the peer's SYN-ACK on that flow (Inbound). A retransmitted
// SYN keeps the first one's time, so a lost SYN shows as the second or
// more it cost the connecting application. Connections peers open are not
// measured: there the SYN-ACK is the node's own.
//
// Samples are counted in histograms labelled by peer and destination
// port, with bounded cardinality:
//
//   - the port is the connection's destination port when it is named by a
//     TCP rule of the node's policy (single ports, at most
//     maxPolicyPorts), or is one of the first maxPromotedPorts ports that
//     completed promoteAfter handshakes; any other port is 0 ("other").
//     Connections to random ports complete a handshake each on a port
//     seen once, so a port scan promotes nothing.
//   - at most maxFlowRTTSets (peer, port) pairs have their own histogram;
//     when all are taken, a new pair takes the place of the pair idle the
//     longest if that one saw nothing for flowRTTIdle, and otherwise is
//     counted in the overflow pair (no peer, port 0).
//
// So Stats.FlowRTT has at most maxFlowRTTSets+1 entries, whatever the
// traffic (TestFlowRTTBounded: 10,000 flows to random ports).

// FlowRTTBuckets are the upper bounds, in seconds, of the handshake round
// trip histograms (the device's probe buckets: ×4 steps from 1 ms). A
// retransmitted SYN costs 1 s and more: such handshakes fall in the last
// buckets.
var FlowRTTBuckets = [...]float64{0.001, 0.004, 0.016, 0.064, 0.256, 1.024}

// NumFlowRTTCounts is the buckets' count, with the last for handshakes
// above every bound (+Inf).
const NumFlowRTTCounts = len(FlowRTTBuckets) + 1

// Cardinality bounds (see above).
const (
	maxFlowRTTSets   = 16
	maxPolicyPorts   = 16
	maxPromotedPorts = 8
	promoteAfter     = 4
	flowRTTIdle      = int64(10 * time.Minute)
)

// FlowRTT is the handshake round trip histogram of one peer and port.
type FlowRTT struct {
	Peer netip.Addr // invalid for the overflow entry
	Port uint16     // 0: other ports
	// Counts counts handshakes by round trip time: index i those at most
	// FlowRTTBuckets[i] seconds and above the previous bound (not
	// cumulative), the last index those above every bound.
	Counts [NumFlowRTTCounts]uint64
	Sum    time.Duration
}

type flowRTTKey struct {
	peer uint32 // 0: overflow
	port uint16 // 0: other
}

type flowRTTSet struct {
	key    flowRTTKey
	counts [NumFlowRTTCounts]uint64
	sum    int64
	last   int64 // filter clock of the last sample
}

// flowRTT holds the histograms. It is used once per handshake, not per
// packet, and does not allocate once its sets exist.
type flowRTT struct {
	mu          sync.Mutex // guards the fields below
	policyPorts [1 << 16 / 64]uint64
	promoted    [1 << 16 / 64]uint64
	nPromoted   int
	seen        [1 << 16]uint8 // handshakes per port not yet named, up to promoteAfter
	sets        [maxFlowRTTSets + 1]flowRTTSet
	nSets       int // sets[0] is the overflow set; 1..nSets-1 are pairs
	index       map[flowRTTKey]int
}

func newFlowRTT() *flowRTT {
	r := &flowRTT{index: make(map[flowRTTKey]int, maxFlowRTTSets+1), nSets: 1}
	r.index[flowRTTKey{}] = 0
	return r
}

func bitSet(b *[1 << 16 / 64]uint64, port uint16) bool { return b[port/64]&(1<<(port%64)) != 0 }
func setBit(b *[1 << 16 / 64]uint64, port uint16)      { b[port/64] |= 1 << (port % 64) }

// setPolicyPorts names the single TCP ports of rs (at most maxPolicyPorts,
// lowest first).
func (r *flowRTT) setPolicyPorts(rs *ruleSet) {
	var ports [1 << 16 / 64]uint64
	n := 0
	for _, sr := range rs.bySrc {
		for _, pr := range sr.tcp.ranges {
			if pr.first == pr.last {
				setBit(&ports, pr.first)
			}
		}
	}
	for w := range ports {
		for b := 0; b < 64; b++ {
			if ports[w]&(1<<b) == 0 {
				continue
			}
			if n++; n > maxPolicyPorts {
				ports[w] &^= 1 << b
			}
		}
	}
	r.mu.Lock()
	r.policyPorts = ports
	r.mu.Unlock()
}

// portLocked is the label port of a handshake to port.
func (r *flowRTT) portLocked(port uint16) uint16 {
	if port == 0 || bitSet(&r.policyPorts, port) || bitSet(&r.promoted, port) {
		return port
	}
	if r.seen[port] < promoteAfter {
		r.seen[port]++
	}
	if r.seen[port] >= promoteAfter && r.nPromoted < maxPromotedPorts {
		setBit(&r.promoted, port)
		r.nPromoted++
		return port
	}
	return 0
}

// observe records a handshake with peer to port that took rtt (filter
// clock nanoseconds), at now.
func (r *flowRTT) observe(peer uint32, port uint16, rtt, now int64) {
	if rtt < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := flowRTTKey{peer: peer, port: r.portLocked(port)}
	i, ok := r.index[k]
	if !ok {
		i = r.newSetLocked(k, now)
	}
	s := &r.sets[i]
	b := len(FlowRTTBuckets)
	sec := float64(rtt) / 1e9
	for j, ub := range FlowRTTBuckets {
		if sec <= ub {
			b = j
			break
		}
	}
	s.counts[b]++
	s.sum += rtt
	s.last = now
}

// newSetLocked gives k a set: a free one, the one idle longest if idle
// for flowRTTIdle, or else the overflow set.
func (r *flowRTT) newSetLocked(k flowRTTKey, now int64) int {
	if r.nSets < len(r.sets) {
		i := r.nSets
		r.nSets++
		r.sets[i] = flowRTTSet{key: k}
		r.index[k] = i
		return i
	}
	oldest := -1
	for i := 1; i < r.nSets; i++ {
		if oldest < 0 || r.sets[i].last < r.sets[oldest].last {
			oldest = i
		}
	}
	if oldest < 0 || now-r.sets[oldest].last < flowRTTIdle {
		return 0
	}
	delete(r.index, r.sets[oldest].key)
	r.sets[oldest] = flowRTTSet{key: k}
	r.index[k] = oldest
	return oldest
}

// synACK measures the handshake a SYN-ACK on the node's flow k answers.
func (f *Filter) synACK(k flowKey, now int64) {
	if at, ok := f.ct.synAnswered(k); ok {
		f.rtt.observe(k.peer, k.remote, now-at, now)
	}
}

// stats returns the histograms that have samples.
func (r *flowRTT) stats() []FlowRTT {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]FlowRTT, 0, r.nSets)
	for i := 0; i < r.nSets; i++ {
		s := &r.sets[i]
		if s.counts == [NumFlowRTTCounts]uint64{} {
			continue
		}
		e := FlowRTT{Port: s.key.port, Counts: s.counts, Sum: time.Duration(s.sum)}
		if s.key.peer != 0 {
			v := s.key.peer
			e.Peer = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		}
		out = append(out, e)
	}
	return out
}
