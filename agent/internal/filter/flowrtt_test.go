package filter

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// handshake runs a TCP handshake the node opens to peer:port, the SYN-ACK
// coming rtt after the SYN.
func handshake(f *Filter, clk *clock, peer string, sport, port uint16, rtt time.Duration) {
	outbound(f, tcp(self, peer, sport, port, syn))
	clk.advance(rtt)
	inbound(f, tcp(peer, self, port, sport, synAck))
	outbound(f, tcp(self, peer, sport, port, ack))
}

func flowRTTOf(f *Filter, peer string, port uint16) (FlowRTT, bool) {
	want := netip.Addr{}
	if peer != "" {
		want = netip.MustParseAddr(peer)
	}
	for _, e := range f.Stats().FlowRTT {
		if e.Peer == want && e.Port == port {
			return e, true
		}
	}
	return FlowRTT{}, false
}

func TestFlowRTT(t *testing.T) {
	clk := &clock{}
	clk.advance(time.Second)
	f := New(Config{Self: selfAddr, Now: clk.now})
	if err := f.SetFilter(testFilter()); err != nil { // single TCP ports: 80, 9000
		t.Fatal(err)
	}
	handshake(f, clk, c, 40000, 80, 3*time.Millisecond)
	// A retransmitted SYN: measured from the first one.
	outbound(f, tcp(self, c, 40001, 9000, syn))
	clk.advance(time.Second)
	outbound(f, tcp(self, c, 40001, 9000, syn))
	clk.advance(100 * time.Millisecond)
	inbound(f, tcp(c, self, 9000, 40001, synAck))
	inbound(f, tcp(c, self, 9000, 40001, synAck)) // a duplicate SYN-ACK: measured once
	// A port no rule names.
	handshake(f, clk, c, 40002, 443, 100*time.Millisecond)
	// A connection the peer opens is not measured.
	inbound(f, tcp(a, self, 40003, 80, syn))
	outbound(f, tcp(self, a, 80, 40003, synAck))

	for _, tc := range []struct {
		name   string
		port   uint16
		counts [NumFlowRTTCounts]uint64
		sum    time.Duration
	}{
		{"policy port 80", 80, [NumFlowRTTCounts]uint64{0, 1}, 3 * time.Millisecond},
		{"policy port 9000, SYN retransmitted", 9000, [NumFlowRTTCounts]uint64{6: 1}, 1100 * time.Millisecond},
		{"443 is other", 0, [NumFlowRTTCounts]uint64{4: 1}, 100 * time.Millisecond},
	} {
		e, ok := flowRTTOf(f, c, tc.port)
		if !ok || e.Counts != tc.counts || e.Sum != tc.sum {
			t.Errorf("%s: FlowRTT(%s, %d) = %+v (found %v), want counts %v sum %v", tc.name, c, tc.port, e, ok, tc.counts, tc.sum)
		}
	}
	if got := len(f.Stats().FlowRTT); got != 3 {
		t.Errorf("%d histograms, want 3 (nothing for the connection a opened): %+v", got, f.Stats().FlowRTT)
	}

	// A new connection on the same ports while the flow is tracked is
	// measured again.
	handshake(f, clk, c, 40000, 80, 5*time.Millisecond)
	if e, _ := flowRTTOf(f, c, 80); e.Counts[2] != 1 {
		t.Errorf("second connection on a reused flow not measured: %+v", e)
	}
}

// TestFlowRTTPromotion: a port no rule names gets its own histogram once
// promoteAfter handshakes completed on it, for at most maxPromotedPorts
// ports.
func TestFlowRTTPromotion(t *testing.T) {
	clk := &clock{}
	f := New(Config{Self: selfAddr, Now: clk.now})
	sport := uint16(30000)
	for port := uint16(5000); port < 5000+maxPromotedPorts+3; port++ {
		for range promoteAfter {
			sport++
			handshake(f, clk, c, sport, port, time.Millisecond)
		}
	}
	named := 0
	for _, e := range f.Stats().FlowRTT {
		if e.Port != 0 {
			named++
			if e.Port >= 5000+maxPromotedPorts {
				t.Errorf("port %d promoted after %d others", e.Port, maxPromotedPorts)
			}
		}
	}
	if named != maxPromotedPorts {
		t.Fatalf("%d ports promoted, want %d", named, maxPromotedPorts)
	}
	if e, _ := flowRTTOf(f, c, 5000); e.Counts[0]+e.Counts[1] != 1 {
		t.Errorf("port 5000: %+v, want the promoting handshake only (the first ones count as other)", e)
	}
}

// TestFlowRTTBounded: 10,000 connections to random ports of random peers
// leave at most maxFlowRTTSets+1 histograms, and ports named by policy keep
// theirs.
func TestFlowRTTBounded(t *testing.T) {
	clk := &clock{}
	f := New(Config{Self: selfAddr, Now: clk.now, MaxFlows: 1 << 16})
	if err := f.SetFilter(testFilter()); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	peers := make([]string, 200)
	for i := range peers {
		peers[i] = fmt.Sprintf("100.64.%d.%d", 1+i/250, 1+i%250)
	}
	handshake(f, clk, peers[0], 1000, 80, 2*time.Millisecond)
	// At most 50 ms a handshake: 10,000 take less than flowRTTIdle.
	for i := range 10000 {
		port := uint16(1 + rng.IntN(65535))
		handshake(f, clk, peers[rng.IntN(len(peers))], uint16(10000+i%50000), port, time.Duration(1+rng.IntN(50))*time.Millisecond)
	}
	st := f.Stats().FlowRTT
	if len(st) > maxFlowRTTSets+1 {
		t.Fatalf("%d histograms after 10,000 flows, want at most %d", len(st), maxFlowRTTSets+1)
	}
	var total uint64
	ports := map[uint16]bool{}
	for _, e := range st {
		for _, n := range e.Counts {
			total += n
		}
		ports[e.Port] = true
	}
	// The clock moves less than flowRTTIdle: no histogram was reused.
	if total != 10001 {
		t.Fatalf("%d handshakes counted, want 10001", total)
	}
	if _, ok := flowRTTOf(f, peers[0], 80); !ok {
		t.Errorf("the policy port's histogram is gone")
	}
	if _, ok := flowRTTOf(f, "", 0); !ok {
		t.Errorf("no overflow histogram")
	}
	// Series a Prometheus exposition of these makes: buckets + sum + count.
	series := len(st) * (NumFlowRTTCounts + 2)
	t.Logf("10,000 flows to random ports: %d histograms (%d distinct port labels), %d series", len(st), len(ports), series)
}

// TestFlowRTTIdleSetReused: a pair idle for flowRTTIdle gives its
// histogram to a new pair when all are taken.
func TestFlowRTTIdleSetReused(t *testing.T) {
	clk := &clock{}
	f := New(Config{Self: selfAddr, Now: clk.now})
	if err := f.SetFilter(testFilter()); err != nil {
		t.Fatal(err)
	}
	for i := range maxFlowRTTSets {
		handshake(f, clk, fmt.Sprintf("100.64.1.%d", i+1), 1000, 80, time.Millisecond)
	}
	late := "100.64.2.1"
	handshake(f, clk, late, 1000, 80, time.Millisecond)
	if _, ok := flowRTTOf(f, late, 80); ok {
		t.Fatal("a pair got a histogram beyond the bound")
	}
	if _, ok := flowRTTOf(f, "", 0); !ok {
		t.Fatal("the pair beyond the bound was not counted as overflow")
	}
	clk.advance(time.Duration(flowRTTIdle))
	handshake(f, clk, late, 1001, 80, time.Millisecond)
	if _, ok := flowRTTOf(f, late, 80); !ok {
		t.Fatal("an idle pair's histogram was not reused")
	}
	if n := len(f.Stats().FlowRTT); n != maxFlowRTTSets+1 {
		t.Fatalf("%d histograms, want %d", n, maxFlowRTTSets+1)
	}
}
