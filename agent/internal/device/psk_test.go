package device

import (
	"context"
	"testing"
	"time"
)

// rotate gives node i the PSK psk, with prev accepted until until (zero:
// no previous PSK).
func (m *mesh) rotate(i int, psk, prev [32]byte, until time.Time) {
	m.t.Helper()
	cfg := m.config(i)
	cfg.PSK = psk
	if !until.IsZero() {
		cfg.PrevPSK, cfg.PrevPSKUntil = prev, until
	}
	if err := m.nodes[i].dev.Reconfig(cfg); err != nil {
		m.t.Fatal(err)
	}
}

// TestPSKRotationKeepsSessions: a new mesh PSK (a node was removed) does
// not end established sessions, and while some nodes have the new PSK and
// some not yet, new handshakes complete in both directions during the
// overlap.
func TestPSKRotationKeepsSessions(t *testing.T) {
	m := newMesh(t, 3, fastTiming())
	a, b, c := m.nodes[0], m.nodes[1], m.nodes[2]
	roundTrip(t, a, b, "before the rotation")
	before := a.dev.peerFor(b).keypairs.currentKeypair()
	old, cur := m.psk, m.psk
	cur[0] ^= 0xff
	until := time.Now().Add(time.Minute)

	// a and b get the new netmap; c has not yet.
	m.rotate(0, cur, old, until)
	m.rotate(1, cur, old, until)
	roundTrip(t, a, b, "right after the rotation")
	roundTrip(t, b, a, "both ways")
	if after := a.dev.peerFor(b).keypairs.currentKeypair(); after != before {
		t.Fatal("the rotation replaced the session")
	}
	// c (old PSK) initiates to a (new PSK, old accepted): completes.
	roundTrip(t, c, a, "from the node that has not seen the rotation")
	if n := a.dev.Counters().HandshakesPreviousPSK; n != 1 {
		t.Fatalf("a accepted %d initiations with the previous PSK, want 1", n)
	}
	// b (new PSK) initiates to c (old PSK only): c refuses the first
	// initiation, the retransmission with the previous PSK completes.
	roundTrip(t, b, c, "to the node that has not seen the rotation")
	if drops(c, DropHandshakeFailed) == 0 {
		t.Error("c never refused an initiation made with the new PSK")
	}
	// c catches up: everything keeps working, old sessions included.
	m.rotate(2, cur, old, until)
	roundTrip(t, c, b, "after c caught up")
	roundTrip(t, a, c, "a to c")
}

// TestPSKRotationOverlapEnds: a node holding only the old PSK (like a
// removed node) completes handshakes during the overlap, and none after.
func TestPSKRotationOverlapEnds(t *testing.T) {
	m := newMesh(t, 2, fastTiming())
	a, old := m.nodes[0], m.nodes[1]
	oldPSK, cur := m.psk, m.psk
	cur[0] ^= 0xff
	m.rotate(0, cur, oldPSK, time.Now().Add(time.Minute))
	roundTrip(t, old, a, "during the overlap")

	// The overlap ends: a forgets old's sessions (as when a peer is
	// removed and re-added) and refuses the old PSK.
	m.rotate(0, cur, oldPSK, time.Now().Add(-time.Second))
	a.dev.peerFor(old).zeroKeys()
	old.dev.peerFor(a).zeroKeys()
	failed := drops(a, DropHandshakeFailed)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := old.dev.Ping(ctx, a.ip); err == nil {
		t.Fatal("a handshake with the old PSK completed after the overlap")
	}
	if drops(a, DropHandshakeFailed) == failed {
		t.Fatal("a never saw (and refused) the old PSK's initiation")
	}
	if st := a.dev.Status(); st.Peers[0].HasSession {
		t.Fatal("a has a session with the old-PSK node")
	}
	// Without the previous PSK configured at all: likewise.
	m.rotate(0, cur, [32]byte{}, time.Time{})
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	if _, _, err := old.dev.Ping(ctx2, a.ip); err == nil {
		t.Fatal("a handshake with the old PSK completed without an overlap")
	}
}
