package device

import (
	"testing"
	"time"
)

// TestProbeRequestIsNoAnswer: a probe request proves only that the peer's
// packets reach us, so it must not count as an answer to what we sent on
// the path; otherwise a path that works one way only looks alive, and the
// node stays on it while its own packets are lost.
func TestProbeRequestIsNoAnswer(t *testing.T) {
	m := newMesh(t, 2, fastTiming())
	a, b := m.nodes[0], m.nodes[1]
	roundTrip(t, a, b, "session")
	roundTrip(t, b, a, "both ways")
	pa, pb := a.dev.peerFor(b), b.dev.peerFor(a)
	if u := pa.unanswered.Load(); u != 0 {
		t.Fatalf("a has unanswered packets after a round trip (since %d)", u)
	}
	pa.noteSent() // a sent something that b has not answered yet
	rx := pa.rxPackets.Load()
	pb.sendProbe(pb.currentEndpoint(), probeRequest, uint64(time.Now().UnixNano()))
	waitFor(t, "a to receive b's probe request", 5*time.Second, func() bool { return pa.rxPackets.Load() > rx })
	if pa.unansweredFor(time.Now()) == 0 {
		t.Fatal("a probe request from b counted as an answer to a's packets")
	}
	// Data from b does answer them.
	roundTrip(t, b, a, "an answer")
	if u := pa.unanswered.Load(); u != 0 {
		t.Fatalf("data from b did not count as an answer (unanswered since %d)", u)
	}
}
