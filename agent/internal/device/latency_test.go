package device

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
	"golang.zx2c4.com/wireguard/replay"
)

func TestLatencyRecord(t *testing.T) {
	var l latency
	t0 := time.Unix(1000, 0)
	rtts := []time.Duration{500 * time.Microsecond, 3 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond, 2 * time.Second}
	for i, rtt := range rtts {
		now := t0.Add(time.Duration(i) * time.Second)
		st := currentStamp(now)
		l.sentProbe(st, now)
		l.reply(st, rtt)
		l.reply(st, rtt) // a second reply to the same probe counts nothing
	}
	// A probe on another path, a lost probe, one still in flight, one
	// that could not be sent.
	l.reply(otherStamp(t0.Add(10*time.Second)), time.Millisecond)
	lost, inflight, unsent := t0.Add(20*time.Second), t0.Add(29*time.Second), t0.Add(29500*time.Millisecond)
	l.sentProbe(currentStamp(lost), lost)
	l.sentProbe(currentStamp(inflight), inflight)
	l.sentProbe(currentStamp(unsent), unsent)
	l.unsent(currentStamp(unsent))

	s := l.snapshot(t0.Add(30*time.Second), 2*time.Second)
	if s.ProbesSent != 7 || s.ProbesAnswered != 5 {
		t.Fatalf("sent, answered = %d, %d, want 7, 5", s.ProbesSent, s.ProbesAnswered)
	}
	// Buckets 1ms, 4ms, 16ms, 64ms, 256ms, 1.024s, +Inf.
	if want := [numRTTCounts]uint64{1, 1, 1, 1, 0, 0, 1}; s.RTTCounts != want {
		t.Fatalf("RTTCounts = %v, want %v", s.RTTCounts, want)
	}
	var sum time.Duration
	for _, r := range rtts {
		sum += r
	}
	if s.RTTSum != sum {
		t.Fatalf("RTTSum = %v, want %v", s.RTTSum, sum)
	}
	// 6 probes old enough to judge (5 answered, 1 lost); the one in
	// flight is not lost yet.
	if s.RecentSent != 6 || s.Loss != 1.0/6 {
		t.Fatalf("RecentSent, Loss = %d, %v, want 6, %v", s.RecentSent, s.Loss, 1.0/6)
	}
	if s.P50 != 10*time.Millisecond || s.P90 != 2*time.Second || s.P99 != 2*time.Second {
		t.Fatalf("p50/p90/p99 = %v/%v/%v, want 10ms/2s/2s", s.P50, s.P90, s.P99)
	}
}

func TestLatencyRingBounded(t *testing.T) {
	var l latency
	t0 := time.Unix(1000, 0)
	for i := range 3 * latencyRing {
		now := t0.Add(time.Duration(i) * time.Second)
		st := currentStamp(now)
		l.sentProbe(st, now)
		if i%2 == 0 {
			l.reply(st, time.Duration(i+1)*time.Millisecond)
		}
	}
	s := l.snapshot(t0.Add(time.Hour), 2*time.Second)
	if s.RecentSent != latencyRing || s.Loss != 0.5 {
		t.Fatalf("RecentSent, Loss = %d, %v, want %d, 0.5", s.RecentSent, s.Loss, latencyRing)
	}
	if s.ProbesSent != 3*latencyRing || s.ProbesAnswered != 3*latencyRing/2 {
		t.Fatalf("sent, answered = %d, %d", s.ProbesSent, s.ProbesAnswered)
	}
	// The ring holds probes 128..191; the answered ones (even i) have
	// RTT i+1 ms: 129, 131, ..., 191, whose 16th of 32 is 159.
	if s.P50 != 159*time.Millisecond {
		t.Fatalf("p50 = %v, want 159ms (of the last %d probes only)", s.P50, latencyRing)
	}
}

func TestPercentile(t *testing.T) {
	r := make([]time.Duration, 100)
	for i := range r {
		r[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct{ q, want int }{{50, 50}, {90, 90}, {99, 99}, {100, 100}} {
		if got := percentile(r, tc.q); got != time.Duration(tc.want) {
			t.Errorf("percentile(1..100, %d) = %d, want %d", tc.q, got, tc.want)
		}
	}
	if got := percentile(r[:1], 99); got != 1 {
		t.Errorf("percentile([1], 99) = %d, want 1", got)
	}
}

// probeWire is the size of a probe on the wire: the 9-byte plaintext
// padded to 16, with the transport header and tag.
const probeWire = wire.TransportMinSize + 16

// TestPeerLatencyFromProbes: two devices measure each other's round trip
// times with the probes, idle and busy, and count the probes lost.
func TestPeerLatencyFromProbes(t *testing.T) {
	tm := fastTiming()
	tm.pathTick = 10 * time.Millisecond
	tm.pathIdleProbe = 50 * time.Millisecond
	tm.pathTimeout = 300 * time.Millisecond
	m := newMesh(t, 2, tm)
	a, b := m.nodes[0], m.nodes[1]
	roundTrip(t, a, b, "session")
	roundTrip(t, b, a, "both ways")
	pa := a.dev.peerFor(b)
	lat := func() PeerLatency { return a.dev.Status().Peers[0].Latency }

	waitFor(t, "10 answered probes while idle", 20*time.Second, func() bool { return lat().ProbesAnswered >= 10 })
	s := lat()
	var n uint64
	for _, c := range s.RTTCounts {
		n += c
	}
	if n != s.ProbesAnswered || s.RTTSum <= 0 || s.P50 <= 0 || s.P50 > s.P90 || s.P90 > s.P99 {
		t.Fatalf("idle: %+v: histogram count %d, want %d, and positive ordered percentiles", s, n, s.ProbesAnswered)
	}
	if s.ProbesSent < s.ProbesAnswered {
		t.Fatalf("idle: answered %d > sent %d", s.ProbesAnswered, s.ProbesSent)
	}

	// Busy both ways: no probe is needed to tell the path is alive, yet
	// round trip samples keep coming.
	before := lat().ProbesAnswered
	stop := make(chan struct{})
	done := make(chan struct{})
	var stopOnce sync.Once
	stopTraffic := func() {
		stopOnce.Do(func() { close(stop) })
		<-done
	}
	t.Cleanup(stopTraffic) // before the devices close, also when the test fails
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			a.tun.Inject(udpPacket(a, b, "busy a"))
			b.tun.Inject(udpPacket(b, a, "busy b"))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	drain := func(n *node) {
		for {
			select {
			case <-n.tun.Outbound():
			case <-done:
				return
			}
		}
	}
	go drain(a)
	go drain(b)
	waitFor(t, "5 more answered probes while busy", 20*time.Second, func() bool { return lat().ProbesAnswered >= before+5 })
	stopTraffic()

	// Lose every probe from b to a: a's probes go unanswered.
	var lostReplies atomic.Int64
	m.net.SetFilter(func(src, dst netip.AddrPort, p []byte) bool {
		if src == b.ul && dst == a.ul && len(p) == probeWire {
			lostReplies.Add(1)
			return false
		}
		return true
	})
	sentBefore, answeredBefore := lat().ProbesSent, lat().ProbesAnswered
	waitFor(t, "5 probes lost", 20*time.Second, func() bool {
		s := lat()
		return s.ProbesSent-sentBefore >= 5+(s.ProbesAnswered-answeredBefore) && s.Loss > 0
	})
	if lostReplies.Load() == 0 {
		t.Fatal("no probe reply was dropped")
	}
	if pa.lat.snapshot(time.Now(), tm.pathTimeout).Loss <= 0 {
		t.Fatal("loss not seen")
	}
	m.net.SetFilter(nil)
}

// TestReplayDropReason: a counter the window refuses is a replay when it
// is within the window (seen before) and too late when it is behind it; the
// bound is wireguard-go's window.
func TestReplayDropReason(t *testing.T) {
	var w replay.Filter
	var highest uint64
	const limit = 1 << 40
	for _, c := range []uint64{0, 1, replayWindow + 100} {
		if !w.ValidateCounter(c, limit) {
			t.Fatalf("ValidateCounter(%d) = false", c)
		}
		highest = max(highest, c)
	}
	for _, tc := range []struct {
		counter uint64
		want    DropReason
	}{
		{replayWindow + 100, DropReplay}, // a duplicate of the newest
		{100, DropReplay},                // at the window's edge: new or seen, the window knows
		{99, DropTooLate},                // behind the window
		{1, DropTooLate},
	} {
		accepted := w.ValidateCounter(tc.counter, limit)
		if tc.want == DropTooLate && accepted {
			t.Fatalf("ValidateCounter(%d) = true behind the window", tc.counter)
		}
		if got := replayDrop(highest, tc.counter); got != tc.want {
			t.Errorf("replayDrop(%d, %d) = %v, want %v", highest, tc.counter, got, tc.want)
		}
	}
	if DropTooLate.String() != "too_late" {
		t.Errorf("DropTooLate.String() = %q", DropTooLate.String())
	}
}
