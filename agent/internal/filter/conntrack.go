package filter

import (
	"sync"
	"sync/atomic"
)

// flowKey identifies a flow from the node's side: the peer's address, the
// protocol, and the node's (local) and the peer's (remote) ports. For ICMP
// echo both ports are the echo identifier.
type flowKey struct {
	peer          uint32
	local, remote uint16
	proto         uint8
}

// flow is a tracked flow.
type flow struct {
	expires int64 // filter clock, nanoseconds
	inbound bool  // opened by the peer (allowed by a rule), not by the node
}

// numShards spreads the flow table over this many locks.
const numShards = 64

// sweepInterval is how often a full shard may sweep out expired flows.
const sweepInterval = int64(1e9)

// evictSamples is how many flows a full shard looks at to evict one.
const evictSamples = 8

type shard struct {
	mu        sync.Mutex // guards the fields below
	flows     map[flowKey]flow
	lastSweep int64
	_         [40]byte // keep shards on separate cache lines
}

// conntrack is a bounded, sharded flow table.
type conntrack struct {
	shards   [numShards]shard
	perShard int
	evicted  atomic.Uint64
}

func newConntrack(maxFlows int) *conntrack {
	ct := &conntrack{perShard: max(maxFlows/numShards, 1)}
	for i := range ct.shards {
		ct.shards[i].flows = make(map[flowKey]flow, min(ct.perShard, 256))
	}
	return ct
}

func (ct *conntrack) shardOf(k flowKey) *shard {
	h := k.peer*0x9e3779b1 ^ (uint32(k.local)<<16|uint32(k.remote))*0x85ebca6b ^ uint32(k.proto)
	h ^= h >> 15
	return &ct.shards[h%numShards]
}

// lookup returns whether k is tracked and not expired, refreshing it to
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
	switch {
	case ok && f.expires > now:
		f.expires = exp
		s.flows[k] = f
	case create:
		if !ok && len(s.flows) >= ct.perShard {
			ct.makeRoomLocked(s, now)
		}
		s.flows[k] = flow{expires: exp, inbound: inbound}
	case ok:
		delete(s.flows, k)
	}
	s.mu.Unlock()
}

// makeRoomLocked frees at least one slot in a full shard: it drops every
// expired flow if it has not done so within sweepInterval, and otherwise
// (or if none had expired) evicts the flow nearest expiry among a few
// sampled ones.
func (ct *conntrack) makeRoomLocked(s *shard, now int64) {
	if now-s.lastSweep >= sweepInterval {
		s.lastSweep = now
		for k, f := range s.flows {
			if f.expires <= now {
				delete(s.flows, k)
			}
		}
		if len(s.flows) < ct.perShard {
			return
		}
	}
	var victim flowKey
	var oldest int64
	n := 0
	for k, f := range s.flows { // map iteration starts at a random place
		if n == 0 || f.expires < oldest {
			victim, oldest = k, f.expires
		}
		n++
		if n == evictSamples {
			break
		}
	}
	if n > 0 {
		delete(s.flows, victim)
		ct.evicted.Add(1)
	}
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
