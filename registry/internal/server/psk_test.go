package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"
)

// netmapPSK decodes the "psk" object of a rendered netmap.
func netmapPSK(t *testing.T, doc []byte) (cur, prev []byte, until time.Time) {
	t.Helper()
	var nm struct {
		PSK *struct {
			Current       string    `json:"current"`
			Previous      string    `json:"previous"`
			PreviousUntil time.Time `json:"previous_until"`
		} `json:"psk"`
	}
	if err := json.Unmarshal(doc, &nm); err != nil {
		t.Fatal(err)
	}
	if nm.PSK == nil {
		t.Fatalf("netmap carries no psk: %s", doc)
	}
	cur, err := base64.StdEncoding.DecodeString(nm.PSK.Current)
	if err != nil {
		t.Fatal(err)
	}
	prev, err = base64.StdEncoding.DecodeString(nm.PSK.Previous)
	if err != nil {
		t.Fatal(err)
	}
	return cur, prev, nm.PSK.PreviousUntil
}

// TestRemoveNodeRotatesPSK: removing a node replaces the mesh PSK, so the
// removed node's copy stops working; the netmap carries the new one and,
// for the overlap, the old one with its expiry.
func TestRemoveNodeRotatesPSK(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, st := newTestServer(t, clock, nil)
	addNode(t, s, st, "alpha", nil, clock.Now())
	addNode(t, s, st, "bravo", nil, clock.Now())
	old := s.set.Mesh.PSK // what every node, bravo too, got at join
	snap := s.hub.current()
	cur, prev, _ := netmapPSK(t, s.render(snap, snap.byID["id-alpha"]))
	if !bytes.Equal(cur, old) || len(prev) != 0 {
		t.Fatalf("netmap psk before removal: current %x previous %x, want %x and none", cur, prev, old)
	}

	if e := s.removeNode(httptest.NewRequest("DELETE", "/", nil), "bravo"); e != nil {
		t.Fatalf("remove bravo: %v", e)
	}
	snap = s.hub.current()
	cur, prev, until := netmapPSK(t, s.render(snap, snap.byID["id-alpha"]))
	if len(cur) != 32 || bytes.Equal(cur, old) {
		t.Fatalf("netmap psk after removing bravo = %x: not rotated", cur)
	}
	if !bytes.Equal(prev, old) {
		t.Fatalf("netmap previous psk = %x, want the old one", prev)
	}
	if want := clock.Now().Add(DefaultPSKOverlap); !until.Equal(want) {
		t.Fatalf("previous psk until %v, want %v", until, want)
	}
	// Stored: a restarted registry serves the same.
	psks, err := st.PSKs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(psks.Current, cur) || !bytes.Equal(psks.Previous, old) || !psks.PreviousUntil.Equal(until) {
		t.Fatalf("stored psks = %+v", psks)
	}
	// A node joining now gets the current PSK.
	if got := s.hub.current().psk.Current; !bytes.Equal(got, cur) {
		t.Fatalf("joins would get psk %x, want %x", got, cur)
	}
	// After the overlap the previous one is no longer listed.
	clock.Add(DefaultPSKOverlap + time.Second)
	addNode(t, s, st, "charlie", nil, clock.Now())
	snap = s.hub.current()
	cur2, prev2, _ := netmapPSK(t, s.render(snap, snap.byID["id-alpha"]))
	if !bytes.Equal(cur2, cur) || len(prev2) != 0 {
		t.Fatalf("netmap psk after the overlap: current %x previous %x, want %x and none", cur2, prev2, cur)
	}
}
