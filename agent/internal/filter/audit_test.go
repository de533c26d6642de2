package filter

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// A peer allowed tcp/80 on the node reaches port 80 of the node's mesh
// address only: not of the node's other addresses, nor of hosts the node
// routes to (its LAN when it forwards). Replies to the node's own flows
// pass only to the address the flow came from.
func TestDestinationMustBeSelf(t *testing.T) {
	f := New(Config{Self: selfAddr})
	if err := f.SetFilter(&api.Filter{PolicyVersion: 1, Rules: []api.FilterRule{
		{Name: "a-http", Sources: []netip.Prefix{pfx(a + "/32")}, Protocol: "tcp", Ports: []api.PortRange{{First: 80, Last: 80}}},
		{Name: "a-dns", Sources: []netip.Prefix{pfx(a + "/32")}, Protocol: "udp", Ports: []api.PortRange{{First: 53, Last: 53}}},
		{Name: "b-any", Sources: []netip.Prefix{pfx(b + "/32")}, Protocol: "any"},
	}}); err != nil {
		t.Fatal(err)
	}
	if !inbound(f, tcp(a, self, 40000, 80, syn)) {
		t.Fatal("a's allowed packet to the node's own address dropped")
	}
	for _, tt := range []struct {
		name string
		pkt  []byte
	}{
		{"tcp/80 to a LAN host", tcp(a, "192.168.1.10", 40000, 80, syn)},
		{"tcp/80 to a 10/8 host", tcp(a, "10.1.2.3", 40000, 80, syn)},
		{"tcp/80 to another mesh address", tcp(a, "100.64.0.9", 40000, 80, syn)},
		{"tcp/80 to the limited broadcast", tcp(a, "255.255.255.255", 40000, 80, syn)},
		{"udp/53 to a LAN host", udp(a, "192.168.1.1", 5000, 53)},
		{"any protocol to a LAN host", ip(b, "192.168.1.10", 47, nil)},
		{"ping to a LAN host", icmp(b, "192.168.1.10", icmpEchoRequest, 1)},
	} {
		if inbound(f, tt.pkt) {
			t.Errorf("Inbound(%s) = true, want false", tt.name)
		}
	}
	// Reply-shaped packets: the node opened flows to a, replies addressed
	// elsewhere do not pass.
	outbound(f, tcp(self, a, 41000, 443, syn))
	outbound(f, udp(self, a, 6000, 5353))
	outbound(f, icmp(self, a, icmpEchoRequest, 77))
	for _, tt := range []struct {
		name string
		pkt  []byte
	}{
		{"tcp reply to a LAN host", tcp(a, "192.168.1.10", 443, 41000, synAck)},
		{"udp reply to a 10/8 host", udp(a, "10.0.0.5", 5353, 6000)},
		{"echo reply to a LAN host", icmp(a, "192.168.1.10", icmpEchoReply, 77)},
	} {
		if inbound(f, tt.pkt) {
			t.Errorf("Inbound(%s) = true, want false", tt.name)
		}
	}
	if !inbound(f, tcp(a, self, 443, 41000, synAck)) || !inbound(f, udp(a, self, 5353, 6000)) || !inbound(f, icmp(a, self, icmpEchoReply, 77)) {
		t.Error("replies to the node's own address dropped")
	}
	if got := f.Stats().Drops[DropDestination]; got != 10 {
		t.Errorf("Drops[%v] = %d, want 10", DropDestination, got)
	}
	// A flow the node sends from another source address (not its mesh
	// address) is no flow of the node's: its replies do not pass.
	outbound(f, udp("192.168.1.10", a, 7000, 53))
	if inbound(f, udp(a, "192.168.1.10", 53, 7000)) {
		t.Error("a reply to a flow from another source address passed")
	}
	// SetSelf moves the node: the old address no longer receives.
	f.SetSelf(netip.MustParseAddr("100.64.0.50"))
	if inbound(f, tcp(a, self, 40001, 80, syn)) {
		t.Error("the node's old address still receives after SetSelf")
	}
	if !inbound(f, tcp(a, "100.64.0.50", 40001, 80, syn)) {
		t.Error("the node's new address does not receive after SetSelf")
	}
}

// Without a known address the node receives nothing.
func TestNoSelfDeliversNothing(t *testing.T) {
	f := New(Config{})
	if err := f.SetFilter(testFilter()); err != nil {
		t.Fatal(err)
	}
	if inbound(f, tcp(b, self, 1, 80, syn)) {
		t.Error("a filter without the node's address accepted a packet")
	}
}

// An ICMP error about one of the node's flows passes only from the peer of
// that flow: another peer cannot tear the flow down (unreachable) or
// shrink its path MTU.
func TestICMPErrorOnlyFromFlowPeer(t *testing.T) {
	f := New(Config{Self: selfAddr})
	if err := f.SetFilter(&api.Filter{}); err != nil {
		t.Fatal(err)
	}
	outbound(f, udp(self, b, 5353, 53))
	outbound(f, tcp(self, b, 40000, 443, syn))
	quotedUDP := udp(self, b, 5353, 53)[:28]
	quotedTCP := tcp(self, b, 40000, 443, syn)[:28]
	for _, tt := range []struct {
		name string
		pkt  []byte
	}{
		{"unreachable from a about the node's flow to b", ip(a, self, protoICMP, icmpHdr(icmpUnreachable, 0, quotedUDP))},
		{"frag-needed from c about the node's flow to b", ip(c, self, protoICMP, icmpHdr(icmpUnreachable, 0, quotedTCP))},
		{"time exceeded from a about the node's flow to b", ip(a, self, protoICMP, icmpHdr(icmpTimeExceeded, 0, quotedTCP))},
		{"error from b to another address", ip(b, "192.168.1.10", protoICMP, icmpHdr(icmpUnreachable, 0, quotedUDP))},
	} {
		if inbound(f, tt.pkt) {
			t.Errorf("Inbound(%s) = true, want false", tt.name)
		}
	}
	if !inbound(f, ip(b, self, protoICMP, icmpHdr(icmpUnreachable, 0, quotedUDP))) ||
		!inbound(f, ip(b, self, protoICMP, icmpHdr(icmpUnreachable, 0, quotedTCP))) {
		t.Error("an ICMP error from the flow's own peer was dropped")
	}
	if got := f.Stats().Related; got != 2 {
		t.Errorf("Related = %d, want 2", got)
	}
}

// One peer opening flows without end cannot push the node's flows with
// other peers out of the table: it holds at most its share.
func TestPeerCannotFillFlowTable(t *testing.T) {
	var clk clock
	const maxFlows = numShards * 16
	f := New(Config{Self: selfAddr, MaxFlows: maxFlows, Now: clk.now})
	if err := f.SetFilter(&api.Filter{Rules: []api.FilterRule{
		{Name: "a-udp", Sources: []netip.Prefix{pfx(a + "/32")}, Protocol: "udp"},
	}}); err != nil {
		t.Fatal(err)
	}
	// The node's own flows with b and c, and one a opened earlier.
	const own = 100
	for i := range own {
		outbound(f, udp(self, b, uint16(10000+i), 53))
		outbound(f, tcp(self, c, uint16(20000+i), 443, syn))
	}
	// a floods: a new flow from every source port.
	for port := 1; port <= 65535; port++ {
		if !inbound(f, udp(a, self, uint16(port), 9999)) {
			t.Fatalf("a's allowed datagram from port %d dropped", port)
		}
	}
	for i := range own {
		if !inbound(f, udp(b, self, 53, uint16(10000+i))) {
			t.Fatalf("the node's flow %d with b was evicted by a's flood", i)
		}
		if !inbound(f, tcp(c, self, 443, uint16(20000+i), synAck)) {
			t.Fatalf("the node's flow %d with c was evicted by a's flood", i)
		}
	}
	st := f.Stats()
	if st.Flows > maxFlows {
		t.Errorf("Flows = %d, want at most %d", st.Flows, maxFlows)
	}
	if aFlows := st.Flows - 2*own; aFlows > maxFlows/4 {
		t.Errorf("a holds %d flows, want at most its share %d", aFlows, maxFlows/4)
	}
	// a's newest flow is tracked as a's (a loses its own oldest flows
	// first): the node's reply on it does not make it a flow of the
	// node's, so it stops when the policy no longer allows a.
	outbound(f, udp(self, a, 9999, 65535))
	if err := f.SetFilter(&api.Filter{}); err != nil {
		t.Fatal(err)
	}
	if inbound(f, udp(a, self, 65535, 9999)) {
		t.Error("a's newest flow was not tracked as a's")
	}
}

// When several peers together fill the table, a full shard evicts from the
// peer holding the most flows in it, not the node's older flows with a
// peer that holds few.
func TestFullTableEvictsHeaviestPeer(t *testing.T) {
	var clk clock
	const maxFlows = numShards * 8
	f := New(Config{Self: selfAddr, MaxFlows: maxFlows, MaxFlowsPerPeer: maxFlows / 2, Now: clk.now})
	if err := f.SetFilter(&api.Filter{Rules: []api.FilterRule{
		{Name: "ab-udp", Sources: []netip.Prefix{pfx(a + "/32"), pfx(b + "/32")}, Protocol: "udp"},
	}}); err != nil {
		t.Fatal(err)
	}
	const own = 64
	for i := range own {
		outbound(f, udp(self, c, uint16(10000+i), 53))
	}
	// a and b flood later: their flows expire after the node's.
	clk.advance(time.Second)
	for port := 1; port <= 20000; port++ {
		inbound(f, udp(a, self, uint16(port), 9999))
		inbound(f, udp(b, self, uint16(port), 9999))
	}
	lost := 0
	for i := range own {
		if !inbound(f, udp(c, self, 53, uint16(10000+i))) {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of the node's %d flows with c were evicted by a and b filling the table", lost, own)
	}
	if st := f.Stats(); st.Flows > maxFlows || st.Evicted == 0 {
		t.Errorf("Flows = %d (want at most %d), Evicted = %d (want some)", st.Flows, maxFlows, st.Evicted)
	}
}
