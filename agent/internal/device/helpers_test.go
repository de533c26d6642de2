package device

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/faketun"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/memnet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

type node struct {
	name string
	key  nodekey.PrivateKey
	ip   netip.Addr     // mesh IP
	ul   netip.AddrPort // underlay address
	tun  *faketun.Device
	bind *memnet.Bind
	dev  *Device
}

type mesh struct {
	t      testing.TB
	net    *memnet.Network
	psk    [32]byte
	meshID string
	tm     timing
	nodes  []*node
	// tunHook, if set, adjusts each fake TUN before its device starts.
	tunHook func(i int, tun *faketun.Device)
	// bindWrap, if set, wraps each node's bind.
	bindWrap func(i int, b Bind) Bind
}

func testKey(t testing.TB, i int) nodekey.PrivateKey {
	t.Helper()
	seed := bytes.Repeat([]byte{byte(i + 1)}, 32)
	k, err := nodekey.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func fastTiming() timing {
	tm := defaultTiming()
	tm.rekeyTimeout = 300 * time.Millisecond
	tm.jitterMax = 5 * time.Millisecond
	tm.initiationRate = time.Millisecond
	return tm
}

// newMeshStopped makes n nodes without starting their devices.
func newMeshStopped(t testing.TB, n int, tm timing) *mesh {
	t.Helper()
	if _, fuzzing := t.(*testing.F); !fuzzing { // the fuzz engine starts its own goroutines
		checkGoroutines(t)
	}
	m := &mesh{t: t, net: memnet.New(), meshID: "test-mesh", tm: tm}
	for i := range m.psk {
		m.psk[i] = 0x42
	}
	for i := 0; i < n; i++ {
		m.addNode(i)
	}
	return m
}

// newMesh starts n nodes that all know each other.
func newMesh(t testing.TB, n int, tm timing) *mesh {
	t.Helper()
	m := newMeshStopped(t, n, tm)
	m.startAll()
	return m
}

func (m *mesh) startAll() {
	for i := range m.nodes {
		m.start(i, m.config(i))
	}
}

func (m *mesh) addNode(i int) *node {
	nd := &node{
		name: fmt.Sprintf("n%d", i),
		key:  testKey(m.t, i),
		ip:   netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)}),
		ul:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 51820),
	}
	m.nodes = append(m.nodes, nd)
	return nd
}

func (m *mesh) peerConfig(j int) PeerConfig {
	o := m.nodes[j]
	return PeerConfig{Name: o.name, PublicKey: o.key.Public(), IP: o.ip, Endpoints: []Endpoint{UDPEndpoint(o.ul)}}
}

// config is node i's config listing every other node.
func (m *mesh) config(i int) Config {
	nd := m.nodes[i]
	cfg := Config{PrivateKey: nd.key, PSK: m.psk, MeshID: m.meshID, ListenPort: nd.ul.Port(), Self: nd.ip,
		PersistentKeepalive: -1}
	for j := range m.nodes {
		if j != i {
			cfg.Peers = append(cfg.Peers, m.peerConfig(j))
		}
	}
	return cfg
}

func (m *mesh) start(i int, cfg Config) {
	m.t.Helper()
	nd := m.nodes[i]
	nd.tun = faketun.New("tm"+nd.name, DefaultMTU, 16)
	nd.tun.AnswerPings = true
	if m.tunHook != nil {
		m.tunHook(i, nd.tun)
	}
	nd.bind = m.net.NewBind(nd.ul.Addr(), 16)
	var bind Bind = nd.bind
	if m.bindWrap != nil {
		bind = m.bindWrap(i, bind)
	}
	dev, err := newDevice(nd.tun, bind, cfg, testLogger(nd.name), m.tm)
	if err != nil {
		m.t.Fatalf("start %s: %v", nd.name, err)
	}
	nd.dev = dev
	m.t.Cleanup(func() { dev.Close() })
}

// packet builds a UDP packet from a to b carrying payload.
func udpPacket(a, b *node, payload string) []byte {
	return faketun.UDPPacket(a.ip.As4(), b.ip.As4(), 1000, 2000, []byte(payload))
}

// expect waits for a packet on b's TUN equal to want.
func expect(t testing.TB, b *node, want []byte, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case got := <-b.tun.Outbound():
			if bytes.Equal(got, want) {
				return
			}
		case <-deadline:
			t.Fatalf("%s: packet %x not delivered within %v", b.name, want[28:], timeout)
		}
	}
}

// expectNone checks that nothing arrives on b's TUN for d.
func expectNone(t testing.TB, b *node, d time.Duration) {
	t.Helper()
	select {
	case got := <-b.tun.Outbound():
		t.Fatalf("%s: unexpected packet delivered: %x", b.name, got)
	case <-time.After(d):
	}
}

// roundTrip sends a packet from a to b and checks it arrives.
func roundTrip(t testing.TB, a, b *node, payload string) {
	t.Helper()
	p := udpPacket(a, b, payload)
	if !a.tun.Inject(p) {
		t.Fatal("inject failed")
	}
	expect(t, b, p, 5*time.Second)
}

func ping(t testing.TB, a, b *node) (time.Duration, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rtt, path, err := a.dev.Ping(ctx, b.ip)
	if err != nil {
		t.Fatalf("ping %s -> %s: %v", a.name, b.name, err)
	}
	return rtt, path
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *Device) peerFor(n *node) *peer {
	d.peersMu.RLock()
	defer d.peersMu.RUnlock()
	return d.byKey[n.key.Public()]
}

func drops(n *node, r DropReason) uint64 { return n.dev.Counters().Drops[r] }

// checkGoroutines fails the test if goroutines started during it outlive
// its cleanups (the devices' Close).
func checkGoroutines(t testing.TB) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		// Registered first, so it runs after every later cleanup.
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutine leak: %d running, %d before\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// testLogger logs to stderr when TM_TEST_LOG is set, else nowhere.
func testLogger(name string) *slog.Logger {
	if os.Getenv("TM_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
}

// funcFilter is a Filter of two functions; a nil in passes everything, a
// nil out ignores everything.
type funcFilter struct {
	in  func(p *packet.Parsed) bool
	out func(p *packet.Parsed)
}

func (f funcFilter) Inbound(p *packet.Parsed) bool { return f.in == nil || f.in(p) }

func (f funcFilter) Outbound(p *packet.Parsed) {
	if f.out != nil {
		f.out(p)
	}
}
