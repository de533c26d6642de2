package device

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/memnet"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// fakeRelay gives each node of a mesh a second, worse path: relay
// endpoints (RelayEndpoint of node i's key) carried over memnet between per-node relay addresses
// (198.18.0.<i+1>:443), which the receiving side reports as relay
// endpoints. Cutting UDP (udpCut) leaves the relay working.
type fakeRelay struct {
	m      *mesh
	udpCut atomic.Bool
}

func relayAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}), 443)
}

// relayEP is the relay path to node i.
type relayEP struct {
	i   int
	ap  netip.AddrPort
	key nodekey.PublicKey
}

func (e *relayEP) ClearSrc()              {}
func (e *relayEP) SrcToString() string    { return "" }
func (e *relayEP) DstToString() string    { return fmt.Sprintf("relay:%d", e.i) }
func (e *relayEP) DstToBytes() []byte     { return []byte(e.DstToString()) }
func (e *relayEP) DstIP() netip.Addr      { return netip.Addr{} }
func (e *relayEP) SrcIP() netip.Addr      { return netip.Addr{} }
func (e *relayEP) PathKind() PathKind     { return PathRelay }
func (e *relayEP) Path() string           { return "relay fake" }
func (e *relayEP) Ready() bool            { return true }
func (e *relayEP) Key() nodekey.PublicKey { return e.key }

type relayBind struct {
	Bind  // UDP
	relay *memnet.Bind
	eps   map[netip.AddrPort]*relayEP // by relay address
	byKey map[nodekey.PublicKey]*relayEP
}

func (f *fakeRelay) wrap(i int, udp Bind) Bind {
	rb := &relayBind{Bind: udp, relay: f.m.net.NewBind(relayAddr(i).Addr(), 16), eps: map[netip.AddrPort]*relayEP{},
		byKey: map[nodekey.PublicKey]*relayEP{}}
	for j := 0; j < 8; j++ {
		rb.eps[relayAddr(j)] = &relayEP{i: j, ap: relayAddr(j)}
	}
	for j, nd := range f.m.nodes {
		rb.eps[relayAddr(j)].key = nd.key.Public()
		rb.byKey[nd.key.Public()] = rb.eps[relayAddr(j)]
	}
	return rb
}

func (b *relayBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, port, err := b.Bind.Open(port)
	if err != nil {
		return nil, 0, err
	}
	rfns, _, err := b.relay.Open(443)
	if err != nil {
		b.Bind.Close()
		return nil, 0, err
	}
	for _, fn := range rfns {
		fns = append(fns, func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			n, err := fn(bufs, sizes, eps)
			for k := 0; k < n; k++ {
				eps[k] = b.eps[eps[k].(*memnet.Endpoint).AddrPort]
			}
			return n, err
		})
	}
	return fns, port, nil
}

func (b *relayBind) Close() error {
	err := b.Bind.Close()
	b.relay.Close()
	return err
}

func (b *relayBind) KeyEndpoint(kind PathKind, key nodekey.PublicKey) (conn.Endpoint, error) {
	if ep := b.byKey[key]; kind == PathRelay && ep != nil {
		return ep, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrEndpointKind, kind)
}

func (b *relayBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	if r, ok := ep.(*relayEP); ok {
		return b.relay.Send(bufs, &memnet.Endpoint{AddrPort: r.ap})
	}
	return b.Bind.Send(bufs, ep)
}

// newRelayMesh starts two nodes that reach each other over UDP and over
// the fake relay, with path timers short enough for a test.
func newRelayMesh(t *testing.T) (*mesh, *fakeRelay) {
	tm := fastTiming()
	tm.pathTick = 50 * time.Millisecond
	tm.pathProbeInterval = 250 * time.Millisecond
	tm.pathTimeout = time.Second
	tm.pathIdleProbe = time.Second
	m := newMeshStopped(t, 2, tm)
	f := &fakeRelay{m: m}
	m.bindWrap = f.wrap
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		return !(f.udpCut.Load() && src.Port() != 443 && dst.Port() != 443)
	})
	for i := range m.nodes {
		cfg := m.config(i)
		for k := range cfg.Peers {
			cfg.Peers[k].Endpoints = append(cfg.Peers[k].Endpoints, RelayEndpoint(m.nodes[1-i].key.Public()))
		}
		m.start(i, cfg)
	}
	return m, f
}

func peerStatus(n *node) PeerStatus { return n.dev.Status().Peers[0] }

// TestIdlePathStays: two nodes on UDP with a relay beside it, and no
// traffic. An idle path is not a failed one: while the probes of the
// idle path are answered, neither node leaves UDP; when they go
// unanswered (UDP cut), both move to the relay without any traffic.
func TestIdlePathStays(t *testing.T) {
	m, f := newRelayMesh(t)
	a, b := m.nodes[0], m.nodes[1]
	roundTrip(t, a, b, "session")
	roundTrip(t, b, a, "both ways")
	for _, n := range []*node{a, b} {
		waitFor(t, n.name+" on UDP", 5*time.Second, func() bool { return strings.HasPrefix(peerStatus(n).Path, "udp ") })
	}
	before := []uint64{peerStatus(a).PathChanges, peerStatus(b).PathChanges}
	rx := []uint64{peerStatus(a).RxPackets, peerStatus(b).RxPackets}
	// Idle for many path timeouts.
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for i, n := range []*node{a, b} {
			if st := peerStatus(n); !strings.HasPrefix(st.Path, "udp ") || st.PathChanges != before[i] {
				t.Fatalf("%s left its idle UDP path: path %q, %d path changes (was %d)", n.name, st.Path, st.PathChanges, before[i])
			}
		}
	}
	for i, n := range []*node{a, b} {
		if st := peerStatus(n); st.RxPackets == rx[i] {
			t.Errorf("%s received nothing while idle: its path was not probed", n.name)
		}
	}
	// UDP dies while the nodes are idle: the unanswered probes demote it.
	f.udpCut.Store(true)
	for _, n := range []*node{a, b} {
		waitFor(t, n.name+" on the relay", 10*time.Second, func() bool { return peerStatus(n).Path == "relay fake" })
	}
	roundTrip(t, a, b, "over the relay")
	// And back on UDP when it returns.
	f.udpCut.Store(false)
	for _, n := range []*node{a, b} {
		waitFor(t, n.name+" back on UDP", 20*time.Second, func() bool { return strings.HasPrefix(peerStatus(n).Path, "udp ") })
	}
}
