package filter

import (
	"sync"
	"sync/atomic"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
)

// flowKey identifies a flow from the node's side: the peer's address, the
// node's address (addr), the protocol, and the node's (local) and the
// peer's (remote) ports. For ICMP echo both ports are the echo identifier.
type flowKey struct {
	peer, addr    uint32
	local, remote uint16
	proto         uint8
}

// flow is a tracked flow.
type flow struct {
	expires int64 // filter clock, nanoseconds
	synAt   int64 // filter clock of the node's first SYN not yet answered (flowrtt.go)
	inbound bool  // opened by the peer (allowed by a rule), not by the node
	synSent bool  // synAt is set
}

// numShards spreads the flow table over this many locks.
const numShards = 64

// sweepInterval is how often a full shard may sweep out expired flows.
const sweepInterval = int64(1e9)

// evictSamples is how many flows a full shard looks at to evict one.
const evictSamples = 8

// peerScanMax bounds how many flows of a shard are looked at to find the
// ones of a peer that holds its share.
const peerScanMax = 1024

type shard struct {
	mu        sync.Mutex // guards the fields below
	flows     map[flowKey]flow
	perPeer   map[uint32]int32 // flows in this shard by peer address
	lastSweep int64
	_         [32]byte // keep shards on separate cache lines
}

// conntrack is a bounded, sharded flow table. A flow's shard depends on
// its whole key, so every peer's flows spread evenly over the shards, and
// each peer may hold at most perPeer flows in each shard: its share of the
// table (Config.MaxFlowsPerPeer).
type conntrack struct {
	shards     [numShards]shard
	perShard   int
	perPeer    int32
	evicted    atomic.Uint64
	peerCapped atomic.Uint64
}

// newConntrack makes a table of about maxFlows flows, each peer holding at
// most about maxPerPeer of them (maxFlows/4 when 0).
func newConntrack(maxFlows, maxPerPeer int) *conntrack {
	if maxPerPeer <= 0 {
		maxPerPeer = maxFlows / 4
	}
	ct := &conntrack{perShard: max(maxFlows/numShards, 1)}
	ct.perPeer = int32(min(max(maxPerPeer/numShards, 1), ct.perShard))
	// The maps start empty and grow with the flows: sized up front (256
	// flows a shard) the empty table held 1.3 MB that the map's
	// initialization writes, resident in every idle node. A shard's map
	// allocates only when its flow count reaches a new high.
	for i := range ct.shards {
		ct.shards[i].flows = make(map[flowKey]flow)
		ct.shards[i].perPeer = make(map[uint32]int32)
	}
	return ct
}

func (ct *conntrack) shardOf(k flowKey) *shard {
	h := k.peer*0x9e3779b1 ^ k.addr*0x7feb352d ^ (uint32(k.local)<<16|uint32(k.remote))*0x85ebca6b ^ uint32(k.proto)
	h ^= h >> 15
	return &ct.shards[h%numShards]
}

// refresh returns whether k is tracked and not expired, refreshing it to
// expire at exp when it is, and whether the peer opened it.
func (ct *conntrack) refresh(k flowKey, now, exp int64) (found, inbound bool) {
	s := ct.shardOf(k)
	s.mu.Lock()
	f, ok := s.flows[k]
	if ok && f.expires > now {
		f.expires = exp
		s.flows[k] = f
		s.mu.Unlock()
		return true, f.inbound
	}
	s.mu.Unlock()
	return false, false
}

// exists reports whether k is tracked and not expired, without refreshing.
func (ct *conntrack) exists(k flowKey, now int64) bool {
	s := ct.shardOf(k)
	s.mu.Lock()
	f, ok := s.flows[k]
	s.mu.Unlock()
	return ok && f.expires > now
}

// upsert refreshes k to expire at exp, creating it when it is missing or
// expired (as opened by the peer when inbound is true). An existing live
// flow keeps who opened it. With create false a missing flow stays missing.
func (ct *conntrack) upsert(k flowKey, now, exp int64, inbound, create bool) {
	s := ct.shardOf(k)
	s.mu.Lock()
	f, ok := s.flows[k]
	// For TCP the node creates a flow with a SYN: the start of its
	// handshake, unless one is already waiting for its SYN-ACK (a
	// retransmission).
	syn := create && !inbound && k.proto == packet.ProtoTCP
	switch {
	case ok && f.expires > now:
		f.expires = exp
		if syn && !f.inbound && !f.synSent {
			f.synAt, f.synSent = now, true
		}
		s.flows[k] = f
	case create:
		if !ok {
			ct.makeRoomLocked(s, k.peer, now)
			s.perPeer[k.peer]++
		}
		s.flows[k] = flow{expires: exp, inbound: inbound, synAt: now, synSent: syn}
	case ok:
		s.deleteLocked(k)
	}
	s.mu.Unlock()
}

// synAnswered returns when the node sent the SYN that a SYN-ACK on k
// answers, and forgets it, so that each handshake is measured once.
func (ct *conntrack) synAnswered(k flowKey) (int64, bool) {
	s := ct.shardOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flows[k]
	if !ok || !f.synSent {
		return 0, false
	}
	f.synSent = false
	s.flows[k] = f
	return f.synAt, true
}

func (s *shard) deleteLocked(k flowKey) {
	delete(s.flows, k)
	if n := s.perPeer[k.peer] - 1; n > 0 {
		s.perPeer[k.peer] = n
	} else {
		delete(s.perPeer, k.peer)
	}
}

// makeRoomLocked frees a slot for a new flow with peer in s when the peer
// holds its share of s or s is full. It first drops every expired flow if
// it has not done so within sweepInterval. A peer at its share then loses
// its own flow nearest expiry among a few; in a full shard the flow nearest
// expiry among a few sampled ones goes, taken from the peer that holds the
// most flows among them, so that the peers with many flows lose first.
func (ct *conntrack) makeRoomLocked(s *shard, peer uint32, now int64) {
	if s.perPeer[peer] < ct.perPeer && len(s.flows) < ct.perShard {
		return
	}
	if now-s.lastSweep >= sweepInterval {
		s.lastSweep = now
		for k, f := range s.flows {
			if f.expires <= now {
				s.deleteLocked(k)
			}
		}
	}
	if s.perPeer[peer] >= ct.perPeer {
		if k, ok := s.oldestOfPeerLocked(peer); ok {
			s.deleteLocked(k)
			ct.evicted.Add(1)
			ct.peerCapped.Add(1)
			return
		}
	}
	if len(s.flows) < ct.perShard {
		return
	}
	var victim flowKey
	var oldest int64
	var most int32
	n := 0
	for k, f := range s.flows { // map iteration starts at a random place
		c := s.perPeer[k.peer]
		if n == 0 || c > most || (c == most && f.expires < oldest) {
			victim, oldest, most = k, f.expires, c
		}
		if n++; n == evictSamples {
			break
		}
	}
	if n > 0 {
		s.deleteLocked(victim)
		ct.evicted.Add(1)
	}
}

// oldestOfPeerLocked returns the flow of peer nearest expiry among the
// first few of its flows met in s.
func (s *shard) oldestOfPeerLocked(peer uint32) (flowKey, bool) {
	var victim flowKey
	var oldest int64
	n, scanned := 0, 0
	for k, f := range s.flows { // map iteration starts at a random place
		if scanned++; scanned > peerScanMax {
			break
		}
		if k.peer != peer {
			continue
		}
		if n == 0 || f.expires < oldest {
			victim, oldest = k, f.expires
		}
		if n++; n == evictSamples {
			break
		}
	}
	return victim, n > 0
}

func (ct *conntrack) len() int {
	n := 0
	for i := range ct.shards {
		s := &ct.shards[i]
		s.mu.Lock()
		n += len(s.flows)
		s.mu.Unlock()
	}
	return n
}
