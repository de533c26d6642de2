package device

import (
	"encoding/binary"
	"math"
	"sync/atomic"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
)

// The queue discipline of a peer's send and receive queues (the batches
// between the reader that queued them and the peer's sequential goroutine,
// the crypto workers in between), after FQ-CoDel (RFC 8290, RFC 8289):
//
//   - Sparse packets skip the queue. On the send side a packet is sparse
//     when its flow (hash of addresses, protocol and ports: flowBucket) has
//     no packet queued and no other packet in the same TUN read: the
//     reader encrypts and sends it at once, so a ping or a keystroke never
//     waits behind a bulk transfer, and no flow is reordered. A burst
//     stays whole (one GSO send, one TUN GRO write at the other end)
//     instead of its first packet leaving alone. The receive side cannot see flows before decryption:
//     there the reader opens every datagram of at most sparseMaxWire
//     bytes itself and delivers at once those that no packet of their
//     flow can be behind in a way that matters (overtakes: keepalives,
//     probes, ICMP such as pings, TCP segments without data such as
//     ACKs); the others (small data: a segment ending a burst, DNS) keep
//     their place behind the queue, since a segment overtaking the rest
//     of its burst looks like loss to TCP (duplicate ACKs, a halved
//     window) and to QUIC.
//   - The queue is bounded by time, not by count: CoDel watches each
//     packet's sojourn time (from queueing to the sequential goroutine
//     taking it, after the crypto workers) and, once it stayed above
//     codelTarget for codelInterval, drops packets at the rate of its
//     control law until it falls below, so TCP slows down instead of
//     filling the queue.
//   - A hard limit of queueMaxPackets per peer and direction, and the
//     capacity of the peer's channel of batches, refuse what comes beyond
//     (tail drop, never blocking the reader) when CoDel is not fast
//     enough. A reader that waited would leave packets, sparse ones among
//     them, in the TUN's queue (TSO super-packets of up to 64 KiB) or the
//     socket's receive buffer (megabytes) behind the bulk. The limit is
//     the most the receiver's replay window (replayWindow) allows: the
//     counters of packets that overtake queued ones, both directions
//     together plus one read, stay within it.
//
// Every packet's sojourn time is recorded in the peer's histogram
// (QueueStats).
const (
	codelTarget   = 5 * time.Millisecond
	codelInterval = 100 * time.Millisecond
	// queueMaxPackets is the most the replay window allows: half of it,
	// less one read of conn.IdealBatchSize (128) packets, in whole reads.
	queueMaxPackets = (replayWindow/2/128 - 1) * 128
	// sparseMaxWire is the largest sparse datagram on the receive side: an
	// inner packet of 256 bytes, padded and framed.
	sparseMaxWire = 256 + 32
	fqBuckets     = 1024
)

// SojournBuckets are the upper bounds of the sojourn histogram's buckets
// (QueueStats.Sojourn), in seconds; the last bucket is +Inf.
var SojournBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25}

var sojournBounds = func() (b [len(SojournBuckets)]int64) {
	for i, s := range SojournBuckets {
		b[i] = int64(s * 1e9)
	}
	return b
}()

// QueueStats is a snapshot of one direction of a peer's queue.
type QueueStats struct {
	// Sojourn counts packets by the time they spent queued: Sojourn[i]
	// those at most SojournBuckets[i] (not cumulative), the last one those
	// above every bound.
	Sojourn    [len(SojournBuckets) + 1]uint64
	SojournSum time.Duration // total of every packet's sojourn time
	// CoDelDrops counts packets CoDel dropped, TailDrops those refused
	// because the queue held queueMaxPackets.
	CoDelDrops, TailDrops uint64
}

// pqueue is the discipline's state for one direction of one peer. The
// counters are atomic; codel belongs to the peer's sequential goroutine.
type pqueue struct {
	packets atomic.Int32 // packets queued
	// flows counts queued packets by flow bucket (send side only).
	flows   [fqBuckets]atomic.Int32
	codel   codel
	sojourn [len(SojournBuckets) + 1]atomic.Uint64
	sum     atomic.Int64
	codelDr atomic.Uint64
	tailDr  atomic.Uint64
}

// admit counts n packets into the queue, reporting false (and counting
// them as tail drops instead) when limit is set and the queue cannot take
// them.
func (q *pqueue) admit(n int, limit bool) bool {
	if q.packets.Add(int32(n)) > queueMaxPackets && limit {
		q.packets.Add(-int32(n))
		q.tailDr.Add(uint64(n))
		return false
	}
	return true
}

// queue puts b, admitted, on ch, p's outbound or inbound channel. A full
// channel (many small batches) refuses it like a full queue: the reader
// never blocks behind the queue, or sparse packets would wait in the TUN
// or the socket. It reports false when b was not queued: refused, or p is
// stopping.
func (q *pqueue) queue(p *peer, ch chan *batch, b *batch) bool {
	select {
	case ch <- b:
		return true
	case <-p.stopCh:
		return false
	default:
	}
	if p.d.fifo.Load() {
		select {
		case ch <- b:
			return true
		case <-p.stopCh:
			return false
		}
	}
	q.tailDr.Add(uint64(len(b.elems)))
	for range b.elems {
		p.d.counters.drop(DropQueueFull)
	}
	return false
}

// overtakes reports whether pkt, the plaintext of a small datagram, may be
// delivered ahead of its peer's queued packets (queue.go's discipline):
// everything that is not an IP packet (keepalives, probes; malformed
// packets are dropped later anyway), ICMP, and TCP segments that carry no
// data, FIN or RST. pp is scratch.
func overtakes(pp *packet.Parsed, pkt []byte) bool {
	if len(pkt) == 0 || !pp.Parse(pkt) {
		return true
	}
	switch pp.Proto {
	case packet.ProtoICMP, packet.ProtoICMPv6:
		return true
	case packet.ProtoTCP:
		if !pp.HasPorts {
			return true
		}
		tcp := pp.Buf[pp.L4:]
		const fin, rst = 0x01, 0x04
		return len(tcp) <= int(tcp[12]>>4)*4 && pp.TCPFlags&(fin|rst) == 0
	}
	return false
}

// record counts n packets that spent sojourn nanoseconds in the queue.
func (q *pqueue) record(sojourn int64, n int) {
	i := 0
	for i < len(sojournBounds) && sojourn > sojournBounds[i] {
		i++
	}
	q.sojourn[i].Add(uint64(n))
	q.sum.Add(sojourn * int64(n))
}

func (q *pqueue) stats() QueueStats {
	s := QueueStats{SojournSum: time.Duration(q.sum.Load()), CoDelDrops: q.codelDr.Load(), TailDrops: q.tailDr.Load()}
	for i := range s.Sojourn {
		s.Sojourn[i] = q.sojourn[i].Load()
	}
	return s
}

// codel is the CoDel state machine (RFC 8289), run by the goroutine that
// dequeues, once per packet.
type codel struct {
	firstAbove int64 // when the sojourn time may have stayed above target for an interval (0: below)
	dropNext   int64 // when to drop next while dropping
	count      uint32
	lastCount  uint32
	dropping   bool
}

// shouldDrop reports whether the packet dequeued at now after sojourn
// nanoseconds is to be dropped; backlog is the number of packets still
// queued behind it.
func (c *codel) shouldDrop(sojourn, now int64, backlog int32) bool {
	okToDrop := false
	if sojourn < int64(codelTarget) || backlog <= 1 {
		c.firstAbove = 0
	} else if c.firstAbove == 0 {
		c.firstAbove = now + int64(codelInterval)
	} else if now >= c.firstAbove {
		okToDrop = true
	}
	if c.dropping {
		if !okToDrop {
			c.dropping = false
			return false
		}
		if now >= c.dropNext {
			c.count++
			c.dropNext = controlLaw(c.dropNext, c.count)
			return true
		}
		return false
	}
	if !okToDrop {
		return false
	}
	// Enter the dropping state, resuming near the previous drop rate if
	// it was left only recently.
	c.dropping = true
	delta := c.count - c.lastCount
	if delta > 1 && now-c.dropNext < 16*int64(codelInterval) {
		c.count = delta
	} else {
		c.count = 1
	}
	c.lastCount = c.count
	c.dropNext = controlLaw(now, c.count)
	return true
}

// controlLaw returns t + interval/sqrt(count).
func controlLaw(t int64, count uint32) int64 {
	return t + int64(float64(codelInterval)/math.Sqrt(float64(count)))
}

// monoBase anchors mono: time.Since reads the monotonic clock.
var monoBase = time.Now()

// mono returns monotonic nanoseconds, the queue's clock.
func mono() int64 { return int64(time.Since(monoBase)) }

// codelDrop applies CoDel to b, dequeued from q at now: the packets it
// drops leave b (and the queue's counts) and are counted.
func (p *peer) codelDrop(q *pqueue, b *batch, now int64) {
	sojourn := now - b.enq
	if p.d.fifo.Load() {
		q.record(sojourn, len(b.elems))
		return
	}
	backlog := q.packets.Load()
	kept := b.elems[:0]
	for _, e := range b.elems {
		if len(e.packet) > 0 && q.codel.shouldDrop(sojourn, now, backlog) {
			q.codelDr.Add(1)
			p.d.counters.drop(DropCoDel)
			q.packets.Add(-1)
			backlog--
			if b.flows {
				p.tx.flows[e.flow].Add(-1)
			}
			p.d.pools.putElem(e)
			continue
		}
		kept = append(kept, e)
	}
	clear(b.elems[len(kept):])
	b.elems = kept
	q.record(sojourn, len(b.elems))
}

// flowBucket hashes an IP packet's flow (addresses, protocol, and the ports
// of TCP, UDP and SCTP packets that are not later fragments) into one of
// fqBuckets. Anything it cannot parse lands in bucket 0.
func flowBucket(pkt []byte) uint32 {
	if len(pkt) < 1 {
		return 0
	}
	var h uint64 = 14695981039346656037
	mix := func(v uint64) {
		h ^= v
		h *= 1099511628211
	}
	var proto byte
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return 0
		}
		ihl := int(pkt[0]&0x0f) * 4
		proto = pkt[9]
		mix(uint64(binary.BigEndian.Uint32(pkt[12:16])))
		mix(uint64(binary.BigEndian.Uint32(pkt[16:20])))
		if binary.BigEndian.Uint16(pkt[6:8])&0x1fff == 0 && ihl >= 20 && len(pkt) >= ihl+4 {
			l4 = pkt[ihl:]
		}
	case 6:
		if len(pkt) < 40 {
			return 0
		}
		proto = pkt[6]
		for i := 8; i < 40; i += 8 {
			mix(binary.BigEndian.Uint64(pkt[i : i+8]))
		}
		if len(pkt) >= 44 {
			l4 = pkt[40:]
		}
	default:
		return 0
	}
	mix(uint64(proto))
	if l4 != nil && (proto == 6 || proto == 17 || proto == 132) {
		mix(uint64(binary.BigEndian.Uint32(l4[:4])))
	}
	// MurmurHash3's finalizer: every input bit reaches the bucket's bits.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return uint32(h % fqBuckets)
}
