package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
)

// TestIdlePathLAN: two nodes on one LAN (the bridge), the coordinator with
// its relay beside them. Once on their direct path, with no traffic, they
// stay on it for a minute: an idle path is not a failed one, so neither
// moves to the relay and back.
func TestIdlePathLAN(t *testing.T) {
	l := newLab(t)
	cns := l.addHost("c", 1)
	ns1, ns2 := l.addHost("n1", 11), l.addHost("n2", 12)
	cfg := l.coordinator(cns, "coord-idle", coordIP+":8443", coordIP+":3478", "100.64.0.0/16")
	tok := l.token(cns, cfg)
	n1 := l.join(ns1, "n1", "n1", "", coordURL, tok)
	n2 := l.join(ns2, "n2", "n2", "", coordURL, tok)
	onePeer := func(s localapi.Status) bool { return len(s.Peers) == 1 }
	ip2 := l.waitStatus(n2, 30*time.Second, "one peer", onePeer).IP.String()
	ip1 := l.waitStatus(n1, 30*time.Second, "one peer", onePeer).IP.String()
	if err := l.ping(ns1, ip2, 20*time.Second); err != nil {
		t.Fatalf("ping n1 -> n2: %v", err)
	}
	if err := l.ping(ns2, ip1, 20*time.Second); err != nil {
		t.Fatalf("ping n2 -> n1: %v", err)
	}
	direct := func(s localapi.Status) bool {
		return len(s.Peers) == 1 && strings.HasPrefix(s.Peers[0].Path, "udp 10.99.0.")
	}
	start := map[*node]localapi.Peer{}
	for _, n := range []*node{n1, n2} {
		start[n] = l.waitStatus(n, 30*time.Second, "a direct path", direct).Peers[0]
	}
	t.Logf("idle from now: n1 on %q (%d changes so far), n2 on %q (%d)", start[n1].Path, start[n1].PathChanges, start[n2].Path, start[n2].PathChanges)
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for _, n := range []*node{n1, n2} {
			s, err := l.status(n)
			if err != nil {
				t.Fatalf("status of %s: %v", n.name, err)
			}
			if len(s.Peers) != 1 {
				t.Fatalf("%s sees %d peers", n.name, len(s.Peers))
			}
			if p := s.Peers[0]; p.Path != start[n].Path || p.PathChanges != start[n].PathChanges {
				t.Fatalf("%s moved while idle: path %q (%d changes), was %q (%d)", n.name, p.Path, p.PathChanges, start[n].Path, start[n].PathChanges)
			}
		}
	}
	// The path still carries traffic at once.
	if err := l.ping(ns1, ip2, 5*time.Second); err != nil {
		t.Errorf("ping n1 -> n2 after the idle minute: %v", err)
	}
}
