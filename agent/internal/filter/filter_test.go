package filter

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// The node under test is self; a, b and c are peers.
const (
	self = "100.64.0.1"
	a    = "100.64.0.2"
	b    = "100.64.0.3"
	c    = "100.64.0.4"
)

func testFilter() *api.Filter {
	return &api.Filter{PolicyVersion: 3, Rules: []api.FilterRule{
		{Name: "a-http", Sources: []netip.Prefix{pfx(a + "/32")}, Protocol: "tcp", Ports: []api.PortRange{{First: 80, Last: 80}, {First: 8000, Last: 8100}}},
		{Name: "ab-dns", Sources: []netip.Prefix{pfx(a + "/32"), pfx(b + "/32")}, Protocol: "udp", Ports: []api.PortRange{{First: 53, Last: 53}}},
		{Name: "ping", Sources: []netip.Prefix{pfx("100.64.0.0/30")}, Protocol: "icmp"},
		{Name: "b-all-tcp", Sources: []netip.Prefix{pfx(b + "/32")}, Protocol: "tcp"},
		{Name: "c-any", Sources: []netip.Prefix{pfx("100.64.0.4/31")}, Protocol: "any"},
		{Name: "a-any-ports", Sources: []netip.Prefix{pfx(a + "/32")}, Protocol: "any", Ports: []api.PortRange{{First: 9000, Last: 9000}}},
	}}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"a tcp 80", tcp(a, self, 40000, 80, syn), true},
		{"a tcp 8050", tcp(a, self, 40000, 8050, syn), true},
		{"a tcp 8100", tcp(a, self, 40000, 8100, ack), true},
		{"a tcp 8101", tcp(a, self, 40000, 8101, syn), false},
		{"a tcp 79", tcp(a, self, 40000, 79, syn), false},
		{"a tcp 22", tcp(a, self, 40000, 22, syn), false},
		{"a udp 53", udp(a, self, 5000, 53), true},
		{"a udp 80", udp(a, self, 5000, 80), false},
		{"b udp 53", udp(b, self, 5000, 53), true},
		{"b tcp any port", tcp(b, self, 1, 65535, syn), true},
		{"b udp 54", udp(b, self, 5000, 54), false},
		{"a ping (/30)", icmp(a, self, icmpEchoRequest, 1), true},
		{"b ping (/30)", icmp(b, self, icmpEchoRequest, 1), true},
		{"c gre (any)", ip(c, self, 47, nil), true},
		{"c tcp (any)", tcp(c, self, 1, 22, syn), true},
		{".5 tcp (any /31)", tcp("100.64.0.5", self, 1, 22, syn), true},
		{".6 ping (no rule)", icmp("100.64.0.6", self, icmpEchoRequest, 1), false},
		{"a any-with-ports tcp 9000", tcp(a, self, 1, 9000, syn), true},
		{"a any-with-ports udp 9000", udp(a, self, 1, 9000), true},
		{"a gre (any with ports covers tcp/udp only)", ip(a, self, 47, nil), false},
		{"a echo reply, no flow", icmp(a, self, icmpEchoReply, 1), true}, // ping rule allows all ICMP
		{"outside mesh", tcp("10.0.0.1", self, 1, 80, syn), false},
		{"ipv6", append([]byte{0x60}, make([]byte, 39)...), false},
	}
	f := New(Config{Self: selfAddr})
	if err := f.SetFilter(testFilter()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := inbound(f, tt.pkt); got != tt.want {
				t.Errorf("Inbound(%s) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
	st := f.Stats()
	if st.PolicyVersion != 3 || st.RuleAccepts["a-http"] != 3 || st.RuleAccepts["c-any"] != 3 {
		t.Errorf("Stats = %+v", st)
	}
	if st.Drops[DropNoRule] != 8 || st.Drops[DropIPv6] != 1 {
		t.Errorf("Drops = %v, want 8 no_rule and 1 ipv6", st.Drops)
	}
}

func TestSetFilterRejectsBadRules(t *testing.T) {
	f := New(Config{Self: selfAddr})
	err := f.SetFilter(&api.Filter{Rules: []api.FilterRule{
		{Name: "sctp", Sources: []netip.Prefix{pfx(a + "/32")}, Protocol: "sctp"},
		{Name: "v6", Sources: []netip.Prefix{pfx("fd00::1/128")}, Protocol: "tcp"},
		{Name: "reversed", Sources: []netip.Prefix{pfx(a + "/32")}, Protocol: "tcp", Ports: []api.PortRange{{First: 90, Last: 80}}},
		{Name: "good", Sources: []netip.Prefix{pfx(b + "/32")}, Protocol: "tcp"},
	}})
	if err == nil {
		t.Fatal("SetFilter accepted bad rules")
	}
	for _, want := range []string{`"sctp"`, `"v6"`, `"reversed"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("SetFilter error %q does not name %s", err, want)
		}
	}
	if inbound(f, tcp(a, self, 1, 85, syn)) {
		t.Error("a bad rule allowed a packet")
	}
	if !inbound(f, tcp(b, self, 1, 85, syn)) {
		t.Error("the good rule beside bad ones does not apply")
	}
}

func TestNoPolicy(t *testing.T) {
	f := New(Config{Self: selfAddr})
	for _, set := range []bool{false, true} {
		if set {
			if err := f.SetFilter(nil); err != nil {
				t.Fatal(err)
			}
		}
		if inbound(f, icmp(a, self, icmpEchoRequest, 1)) || inbound(f, tcp(a, self, 1, 80, syn)) {
			t.Fatalf("no policy (SetFilter called: %v): a new inbound flow passed", set)
		}
		outbound(f, tcp(self, a, 5000+uint16(len(t.Name())), 443, syn))
		outbound(f, udp(self, a, 6000, 53))
		if !inbound(f, tcp(a, self, 443, 5000+uint16(len(t.Name())), synAck)) || !inbound(f, udp(a, self, 53, 6000)) {
			t.Fatalf("no policy (SetFilter called: %v): a reply to the node's own flow was dropped", set)
		}
	}
}

func TestConntrack(t *testing.T) {
	var clk clock
	f := New(Config{Self: selfAddr, Now: clk.now})
	if err := f.SetFilter(&api.Filter{}); err != nil {
		t.Fatal(err)
	}
	// TCP: only a SYN opens a flow.
	outbound(f, tcp(self, a, 40000, 443, ack))
	if inbound(f, tcp(a, self, 443, 40000, ack)) {
		t.Error("a non-SYN outbound packet opened a flow")
	}
	outbound(f, tcp(self, a, 40000, 443, syn))
	if !inbound(f, tcp(a, self, 443, 40000, synAck)) {
		t.Error("SYN-ACK to the node's SYN dropped")
	}
	if inbound(f, tcp(a, self, 443, 40001, ack)) || inbound(f, tcp(b, self, 443, 40000, ack)) || inbound(f, tcp(a, self, 444, 40000, ack)) {
		t.Error("a packet of another flow passed")
	}
	if inbound(f, udp(a, self, 443, 40000)) {
		t.Error("UDP passed on a TCP flow")
	}
	// UDP.
	outbound(f, udp(self, b, 5353, 53))
	if !inbound(f, udp(b, self, 53, 5353)) {
		t.Error("UDP reply dropped")
	}
	// ICMP echo.
	outbound(f, icmp(self, c, icmpEchoRequest, 99))
	if !inbound(f, icmp(c, self, icmpEchoReply, 99)) {
		t.Error("echo reply dropped")
	}
	if inbound(f, icmp(c, self, icmpEchoReply, 98)) {
		t.Error("echo reply with another id passed")
	}
	// ICMP errors quoting a tracked flow pass; others do not.
	quoted := udp(self, b, 5353, 53)[:28]
	if !inbound(f, ip(b, self, protoICMP, icmpHdr(icmpUnreachable, 0, quoted))) {
		t.Error("ICMP unreachable for a tracked UDP flow dropped")
	}
	if !inbound(f, ip(a, self, protoICMP, icmpHdr(icmpUnreachable, 0, tcp(self, a, 40000, 443, ack)[:28]))) {
		t.Error("ICMP frag-needed for a tracked TCP flow dropped")
	}
	if inbound(f, ip(b, self, protoICMP, icmpHdr(icmpUnreachable, 0, udp(self, b, 5354, 53)[:28]))) {
		t.Error("ICMP error for an untracked flow passed")
	}
	// Timeouts: UDP 3m, TCP 12m, ICMP 10m, counted from the last packet.
	clk.advance(2 * time.Minute)
	if !inbound(f, udp(b, self, 53, 5353)) {
		t.Error("UDP flow expired before its timeout")
	}
	clk.advance(UDPTimeout + time.Second)
	if inbound(f, udp(b, self, 53, 5353)) {
		t.Error("UDP flow outlived its timeout")
	}
	if !inbound(f, tcp(a, self, 443, 40000, ack)) {
		t.Error("TCP flow expired after 5m")
	}
	clk.advance(TCPTimeout - time.Second)
	if !inbound(f, tcp(a, self, 443, 40000, ack)) {
		t.Error("TCP flow expired before its timeout")
	}
	if inbound(f, icmp(c, self, icmpEchoReply, 99)) {
		t.Error("ICMP flow outlived its timeout")
	}
	clk.advance(TCPTimeout + time.Second)
	if inbound(f, tcp(a, self, 443, 40000, ack)) {
		t.Error("TCP flow outlived its timeout")
	}
	if st := f.Stats(); st.Established == 0 || st.Related != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestPolicyChange(t *testing.T) {
	var clk clock
	f := New(Config{Self: selfAddr, Now: clk.now})
	allowA := &api.Filter{PolicyVersion: 1, Rules: []api.FilterRule{
		{Name: "a-http", Sources: []netip.Prefix{pfx(a + "/32")}, Protocol: "tcp", Ports: []api.PortRange{{First: 80, Last: 80}}},
		{Name: "b-ssh", Sources: []netip.Prefix{pfx(b + "/32")}, Protocol: "tcp", Ports: []api.PortRange{{First: 22, Last: 22}}},
		{Name: "b-udp", Sources: []netip.Prefix{pfx(b + "/32")}, Protocol: "udp", Ports: []api.PortRange{{First: 9999, Last: 9999}}},
	}}
	if err := f.SetFilter(allowA); err != nil {
		t.Fatal(err)
	}
	// a opens HTTP to the node, b opens SSH and a UDP flow, and the node
	// opens a connection to c.
	if !inbound(f, tcp(a, self, 50000, 80, syn)) || !inbound(f, tcp(b, self, 50001, 22, syn)) || !inbound(f, udp(b, self, 7000, 9999)) {
		t.Fatal("allowed flows dropped")
	}
	outbound(f, tcp(self, a, 80, 50000, synAck))
	outbound(f, tcp(self, b, 22, 50001, synAck))
	outbound(f, udp(self, b, 9999, 7000))
	outbound(f, tcp(self, c, 41000, 5432, syn))
	if !inbound(f, tcp(c, self, 5432, 41000, synAck)) {
		t.Fatal("reply to the node's flow dropped")
	}
	// New policy: a's HTTP stays, b loses SSH and UDP.
	if err := f.SetFilter(&api.Filter{PolicyVersion: 2, Rules: allowA.Rules[:1]}); err != nil {
		t.Fatal(err)
	}
	if f.PolicyVersion() != 2 {
		t.Errorf("PolicyVersion = %d, want 2", f.PolicyVersion())
	}
	if !inbound(f, tcp(a, self, 50000, 80, ack)) {
		t.Error("a connection that remains allowed was dropped")
	}
	if inbound(f, tcp(b, self, 50001, 22, ack)) {
		t.Error("a connection that became disallowed still passes")
	}
	if !inbound(f, tcp(c, self, 5432, 41000, ack)) {
		t.Error("the node's own connection was dropped by a policy change")
	}
	// The node keeps answering on b's revoked flows: that must not reopen
	// them as flows of its own.
	outbound(f, tcp(self, b, 22, 50001, ack))
	outbound(f, udp(self, b, 9999, 7000))
	if inbound(f, tcp(b, self, 50001, 22, ack)) || inbound(f, udp(b, self, 7000, 9999)) {
		t.Error("the node's replies reopened a revoked flow")
	}
	// Re-allowing opens the path again at once.
	if err := f.SetFilter(allowA); err != nil {
		t.Fatal(err)
	}
	if !inbound(f, tcp(b, self, 50001, 22, ack)) {
		t.Error("a re-allowed flow stays blocked")
	}
}

func TestFragments(t *testing.T) {
	var clk clock
	f := New(Config{Self: selfAddr, Now: clk.now})
	if err := f.SetFilter(&api.Filter{Rules: []api.FilterRule{
		{Name: "a-dns", Sources: []netip.Prefix{pfx(a + "/32")}, Protocol: "udp", Ports: []api.PortRange{{First: 53, Last: 53}}},
		{Name: "b-udp", Sources: []netip.Prefix{pfx(b + "/32")}, Protocol: "udp"},
	}}); err != nil {
		t.Fatal(err)
	}
	later := func(src string, id uint16) []byte {
		return fragment(ip(src, self, protoUDP, make([]byte, 16)), id, 185, false)
	}
	if inbound(f, later(a, 7)) {
		t.Error("a later fragment passed before its first")
	}
	if !inbound(f, fragment(udp(a, self, 1000, 53), 7, 0, true)) {
		t.Fatal("allowed first fragment dropped")
	}
	if !inbound(f, later(a, 7)) {
		t.Error("later fragment of an allowed datagram dropped")
	}
	if inbound(f, later(a, 8)) {
		t.Error("later fragment of another datagram passed")
	}
	if inbound(f, fragment(udp(a, self, 1000, 54), 9, 0, true)) || inbound(f, later(a, 9)) {
		t.Error("fragments of a denied datagram passed")
	}
	if !inbound(f, later(b, 1)) {
		t.Error("a later fragment from a source allowed on every port was dropped")
	}
	clk.advance(FragmentTimeout + time.Second)
	if inbound(f, later(a, 7)) {
		t.Error("later fragment passed after the fragment timeout")
	}
	if got := f.Stats().Drops[DropFragment]; got != 4 {
		t.Errorf("fragment drops = %d, want 4", got)
	}
}

func TestFlowTableBounded(t *testing.T) {
	var clk clock
	const max = 64 * 4
	f := New(Config{Self: selfAddr, MaxFlows: max, MaxFlowsPerPeer: max, Now: clk.now})
	for i := range 10 * max {
		outbound(f, udp(self, a, uint16(1000+i), 53))
	}
	st := f.Stats()
	if st.Flows > max {
		t.Errorf("Flows = %d, want at most %d", st.Flows, max)
	}
	if st.Evicted < 9*max {
		t.Errorf("Evicted = %d, want at least %d", st.Evicted, 9*max)
	}
	// The newest flow survives eviction.
	if !inbound(f, udp(a, self, 53, uint16(1000+10*max-1))) {
		t.Error("the newest flow was evicted")
	}
	// Once flows expire, a sweep reclaims them without evicting live ones.
	clk.advance(UDPTimeout + time.Second)
	evicted := f.Stats().Evicted
	outbound(f, udp(self, b, 1, 53))
	if got := f.Stats().Evicted; got != evicted {
		t.Errorf("Evicted = %d after the flows expired, want %d: expired flows were not swept first", got, evicted)
	}
}

func TestDeniedLogRateLimited(t *testing.T) {
	var clk clock
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	f := New(Config{Self: selfAddr, Logger: logger, LogPerSecond: 3, Now: clk.now})
	for range 10 {
		inbound(f, tcp(a, self, 1234, 22, syn))
	}
	clk.advance(time.Second)
	inbound(f, udp(b, self, 1, 161))
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if n := strings.Count(out, "msg=denied"); n != 4 {
		t.Errorf("logged %d denials, want 4:\n%s", n, out)
	}
	for _, want := range []string{"component=filter", "reason=no_rule", "src=100.64.0.2", "dst=100.64.0.1", "proto=6", "dport=22", "dport=161"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if got := f.Stats().LogSuppressed; got != 7 {
		t.Errorf("LogSuppressed = %d, want 7", got)
	}
}

func TestDeniedLogLevel(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil)) // Info and up
	f := New(Config{Self: selfAddr, Logger: logger, LogLevel: slog.LevelDebug})
	inbound(f, tcp(a, self, 1234, 22, syn))
	mu.Lock()
	defer mu.Unlock()
	if buf.Len() != 0 {
		t.Errorf("denial logged at debug level to an info logger: %s", buf.String())
	}
	if got := f.Stats().LogSuppressed; got != 0 {
		t.Errorf("LogSuppressed = %d, want 0 (a disabled level uses no budget)", got)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestNoAllocs(t *testing.T) {
	f := New(Config{Self: selfAddr})
	if err := f.SetFilter(testFilter()); err != nil {
		t.Fatal(err)
	}
	allowed := tcp(a, self, 40000, 80, ack)
	denied := tcp(a, self, 40000, 22, syn)
	out := tcp(self, c, 41000, 443, syn)
	reply := tcp(c, self, 443, 41000, ack)
	malformed := []byte{0x45, 0}
	synAckIn := tcp(c, self, 443, 41000, synAck)
	outbound(f, out)
	inbound(f, synAckIn) // the handshake histogram exists
	for name, fn := range map[string]func(){
		"inbound allowed":   func() { inbound(f, allowed) },
		"inbound denied":    func() { inbound(f, denied) },
		"inbound reply":     func() { inbound(f, reply) },
		"inbound malformed": func() { inbound(f, malformed) },
		"outbound":          func() { outbound(f, out) },
		"handshake measured": func() {
			outbound(f, out)
			inbound(f, synAckIn)
		},
	} {
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", name, n)
		}
	}
}

// TestConcurrent runs both directions and policy swaps at once; run it
// with -race.
func TestConcurrent(t *testing.T) {
	f := New(Config{Self: selfAddr, MaxFlows: 1024})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				port := uint16(g*10000 + i)
				outbound(f, udp(self, a, port, 53))
				if !inbound(f, udp(a, self, 53, port)) && f.Stats().Evicted == 0 {
					t.Errorf("reply %d dropped without eviction", port)
					return
				}
				inbound(f, tcp(a, self, port, 80, syn))
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			fl := testFilter()
			fl.PolicyVersion = uint64(i)
			if err := f.SetFilter(fl); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
}
