package device

import (
	"slices"
	"sync"
	"time"
)

// Latency and loss of a peer's current path, measured with the encrypted
// probes of paths.go.
//
// Every probe request sent on the path that carries the peer's packets is
// recorded (its stamp, the sender's clock, with the lowest bit set so that
// no probe to another path carries the same stamp) in a ring of the last
// latencyRing such probes; the reply echoes the stamp and completes the
// record with its round trip time. Probes to other paths (candidates being
// tried, a hole punch in progress) are not counted: their silence is not
// loss on the path the peer uses. A busy current path (answered traffic,
// so no idle or unanswered probe) is still probed every pathIdleProbe for
// a sample. From the records:
//
//   - ProbesSent and ProbesAnswered count since the peer was added
//     (loss over a window: 1 - answered/sent);
//   - RTTCounts is a histogram of the answered probes' round trip times
//     with the fixed bounds RTTBuckets (Prometheus' histogram);
//   - P50, P90, P99 and Loss describe the ring: the answered probes among
//     the last latencyRing, and the share of those sent at least
//     pathTimeout ago that went unanswered.
//
// A probe is at most one packet per peer every few seconds: nothing here is
// on the per-packet path.

// latencyRing is how many recent current-path probes a peer remembers (at
// one probe per 5 s on a healthy path, about five minutes).
const latencyRing = 64

// RTTBuckets are the upper bounds, in seconds, of the probe round trip
// histogram (PeerLatency.RTTCounts): ×4 steps from a LAN (1 ms) to a bad
// intercontinental relay path (1 s). Few buckets, because every bucket is
// a Prometheus series per peer.
var RTTBuckets = [...]float64{0.001, 0.004, 0.016, 0.064, 0.256, 1.024}

// numRTTCounts is the histogram's bucket count, with the last one for
// round trips above every bound (+Inf).
const numRTTCounts = len(RTTBuckets) + 1

// PeerLatency is the latency and loss of a peer's current path, from the
// probes (latency.go).
type PeerLatency struct {
	ProbesSent     uint64 // probes sent on the current path
	ProbesAnswered uint64 // of which a reply came back
	// RTTCounts counts the answered probes by round trip time: index i
	// holds those at most RTTBuckets[i] seconds and above the previous
	// bound (not cumulative); the last index those above every bound.
	RTTCounts [numRTTCounts]uint64
	RTTSum    time.Duration // sum of the answered probes' round trip times

	// Over the last probes (at most latencyRing): percentiles of the
	// answered ones' round trip times (0 when none answered), how many
	// were sent at least pathTimeout ago (RecentSent), and the share of
	// those unanswered.
	P50, P90, P99 time.Duration
	RecentSent    int
	Loss          float64
}

type probeRecord struct {
	stamp int64 // unix ns | 1; 0: empty
	sent  time.Time
	rtt   time.Duration // 0 until answered
}

// latency is a peer's probe record. Its methods are safe for concurrent use.
type latency struct {
	mu       sync.Mutex // guards the fields below
	ring     [latencyRing]probeRecord
	next     int
	sent     uint64
	answered uint64
	counts   [numRTTCounts]uint64
	sum      time.Duration
}

// currentStamp is the stamp of a probe on the current path sent at now.
func currentStamp(now time.Time) uint64 { return uint64(now.UnixNano()) | 1 }

// otherStamp is the stamp of a probe on another path sent at now.
func otherStamp(now time.Time) uint64 { return uint64(now.UnixNano()) &^ 1 }

// sentProbe records a probe with stamp sent on the current path at now.
func (l *latency) sentProbe(stamp uint64, now time.Time) {
	l.mu.Lock()
	l.ring[l.next] = probeRecord{stamp: int64(stamp), sent: now}
	l.next = (l.next + 1) % latencyRing
	l.sent++
	l.mu.Unlock()
}

// unsent forgets the probe with stamp: it could not be sent after all.
func (l *latency) unsent(stamp uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.ring {
		if r := &l.ring[i]; r.stamp == int64(stamp) && r.rtt == 0 {
			*r = probeRecord{}
			l.sent--
			return
		}
	}
}

// reply records the reply to the probe with stamp, rtt after it was
// sent. A stamp that is not a recorded current-path probe (a probe to
// another path, one already answered, one pushed out of the ring) counts
// nothing.
func (l *latency) reply(stamp uint64, rtt time.Duration) {
	if stamp&1 == 0 || rtt <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.ring {
		r := &l.ring[i]
		if r.stamp != int64(stamp) || r.rtt != 0 {
			continue
		}
		r.rtt = rtt
		l.answered++
		l.sum += rtt
		b := len(RTTBuckets)
		for j, ub := range RTTBuckets {
			if rtt.Seconds() <= ub {
				b = j
				break
			}
		}
		l.counts[b]++
		return
	}
}

// snapshot returns the peer's latency; probes younger than timeout that are
// unanswered are still in flight, not lost.
func (l *latency) snapshot(now time.Time, timeout time.Duration) PeerLatency {
	var rtts [latencyRing]time.Duration
	n := 0
	var s PeerLatency
	lost := 0
	l.mu.Lock()
	s.ProbesSent, s.ProbesAnswered = l.sent, l.answered
	s.RTTCounts, s.RTTSum = l.counts, l.sum
	for _, r := range l.ring {
		switch {
		case r.stamp == 0:
		case r.rtt > 0:
			rtts[n] = r.rtt
			n++
			s.RecentSent++
		case now.Sub(r.sent) >= timeout:
			lost++
			s.RecentSent++
		}
	}
	l.mu.Unlock()
	if s.RecentSent > 0 {
		s.Loss = float64(lost) / float64(s.RecentSent)
	}
	if n > 0 {
		r := rtts[:n]
		slices.Sort(r)
		s.P50, s.P90, s.P99 = percentile(r, 50), percentile(r, 90), percentile(r, 99)
	}
	return s
}

// percentile is the nearest-rank q-th percentile of the sorted r.
func percentile(r []time.Duration, q int) time.Duration {
	i := (q*len(r)+99)/100 - 1
	return r[max(i, 0)]
}
