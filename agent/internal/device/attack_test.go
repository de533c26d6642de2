package device

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/cookie"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// TestIgnoredCrossingInitiationNotReplayable: when both sides initiate at
// once, the side with the greater key ignores the other's initiation. A
// captured copy of that ignored initiation, replayed later from another
// address, must not install a session nor move the peer's endpoint.
func TestIgnoredCrossingInitiationNotReplayable(t *testing.T) {
	m := newMesh(t, 2, fastTiming())
	a, b := m.nodes[0], m.nodes[1]
	hi, lo := a, b
	apub, _ := a.key.Public().X25519()
	bpub, _ := b.key.Public().X25519()
	if bytes.Compare(apub[:], bpub[:]) < 0 {
		hi, lo = b, a
	}
	var mu sync.Mutex
	held := map[netip.AddrPort][]byte{}
	released := false
	m.net.SetFilter(func(src, dst netip.AddrPort, p []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		if released || len(p) == 0 || p[0] != wire.TypeInitiation {
			return true
		}
		if _, ok := held[src]; !ok {
			held[src] = append([]byte(nil), p...)
		}
		if len(held) == 2 {
			released = true
			go func() {
				m.net.Inject(a.ul, b.ul, held[a.ul])
				m.net.Inject(b.ul, a.ul, held[b.ul])
			}()
		}
		return false
	})
	pa, pb := udpPacket(a, b, "from a"), udpPacket(b, a, "from b")
	a.tun.Inject(pa)
	b.tun.Inject(pb)
	expect(t, b, pa, 5*time.Second)
	expect(t, a, pb, 5*time.Second)
	mu.Lock()
	captured := held[lo.ul] // the initiation hi ignored
	mu.Unlock()

	p := hi.dev.peerFor(lo)
	before := hi.dev.Counters().HandshakesCompleted
	epBefore := p.currentEndpoint().DstToString()
	// Past RekeyTimeout, when hi no longer treats an initiation from lo as
	// crossing its own.
	time.Sleep(2 * m.tm.rekeyTimeout)
	attacker := netip.MustParseAddrPort("203.0.113.66:4444")
	m.net.Inject(attacker, hi.ul, captured)
	waitFor(t, "the replay to be refused", 5*time.Second, func() bool {
		return drops(hi, DropStaleInitiation) > 0 || hi.dev.Counters().HandshakesCompleted != before
	})
	if c := hi.dev.Counters().HandshakesCompleted; c != before {
		t.Errorf("replayed crossing initiation completed a handshake (%d -> %d)", before, c)
	}
	if next := p.keypairs.next.Load(); next != nil {
		t.Errorf("replayed crossing initiation installed a session (index %d)", next.localIndex)
	}
	if ep := p.currentEndpoint().DstToString(); ep != epBefore {
		t.Errorf("replayed crossing initiation moved the endpoint %s -> %s", epBefore, ep)
	}
	roundTrip(t, hi, lo, "the session still works")
}

// fakeRecv hands out the datagrams queued on it, then blocks until closed.
type fakeRecv struct {
	msgs   [][]byte
	closed chan struct{}
}

func (f *fakeRecv) recv(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	if len(f.msgs) == 0 {
		<-f.closed
		return 0, net.ErrClosed
	}
	n := 0
	for n < len(bufs) && len(f.msgs) > 0 {
		sizes[n] = copy(bufs[n], f.msgs[0])
		eps[n] = &conn.StdNetEndpoint{AddrPort: netip.MustParseAddrPort("203.0.113.9:1")}
		f.msgs = f.msgs[1:]
		n++
	}
	return n, nil
}

// TestHandshakeSizeCheckedBeforeQueue: handshake messages of the wrong size
// are dropped by the receive loop, before they take a place (and a 64 KiB
// read buffer) in the handshake queue.
func TestHandshakeSizeCheckedBeforeQueue(t *testing.T) {
	m := newMeshStopped(t, 1, fastTiming())
	nd := m.nodes[0]
	bind := m.net.NewBind(nd.ul.Addr(), 16)
	d := &Device{bind: bind, hsQueue: make(chan *elem, handshakeQueueSize), closing: make(chan struct{})}
	d.indices.init()
	d.pools.init(bind.BatchSize())

	var msgs [][]byte
	for _, tc := range []struct {
		typ  byte
		size int
	}{
		{wire.TypeInitiation, wire.MaxMessageSize}, {wire.TypeInitiation, wire.InitiationSize + 1},
		{wire.TypeInitiation, wire.InitiationSize - 1}, {wire.TypeResponse, 60000},
		{wire.TypeResponse, wire.ResponseSize + 1}, {wire.TypeCookieReply, 40000},
		{wire.TypeCookieReply, wire.CookieReplySize - 1},
	} {
		msg := make([]byte, tc.size)
		msg[0], msg[1] = tc.typ, wire.Version
		msgs = append(msgs, msg)
	}
	good := make([]byte, wire.InitiationSize)
	good[0], good[1] = wire.TypeInitiation, wire.Version
	msgs = append(msgs, good)
	f := &fakeRecv{msgs: msgs, closed: make(chan struct{})}
	d.wgReaders.Add(1)
	go d.routineReceive(f.recv)
	defer func() { close(f.closed); d.wgReaders.Wait() }()

	select {
	case e := <-d.hsQueue:
		if len(e.packet) != wire.InitiationSize {
			t.Fatalf("queued a %d-byte handshake message (type %d)", len(e.packet), e.packet[0])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the well-sized initiation was not queued")
	}
	if n := len(d.hsQueue); n != 0 {
		t.Fatalf("%d more messages queued, want 0", n)
	}
	if got, want := d.counters.snapshot().Drops[DropJunk], uint64(len(msgs)-1); got != want {
		t.Fatalf("junk drops = %d, want %d", got, want)
	}
}

// TestForgedLowOrderResponse: a forged response (right receiver index,
// valid mac1, an ephemeral key of low order) reaching the initiator before
// the genuine one must not spoil the handshake: the genuine response still
// establishes the session, without waiting for a retransmission.
func TestForgedLowOrderResponse(t *testing.T) {
	m := newMesh(t, 2, defaultTiming()) // RekeyTimeout 5 s: a retransmission would show
	a, b := m.nodes[0], m.nodes[1]
	var mu sync.Mutex
	var genuine []byte
	m.net.SetFilter(func(src, dst netip.AddrPort, p []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		if genuine == nil && len(p) > 0 && p[0] == wire.TypeResponse {
			genuine = append([]byte(nil), p...)
			return false
		}
		return true
	})
	pa := udpPacket(a, b, "through a forged response")
	a.tun.Inject(pa)
	waitFor(t, "b's response", 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return genuine != nil })
	mu.Lock()
	resp := genuine
	mu.Unlock()

	r, err := wire.ParseResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	apub, err := a.key.Public().X25519()
	if err != nil {
		t.Fatal(err)
	}
	forged := wire.Response{Sender: 99, Receiver: r.Receiver} // ephemeral all zero: low order
	fb := forged.MarshalTo(make([]byte, wire.ResponseSize))
	cookie.NewGenerator(apub).AddMACs(fb, time.Now())
	failed := drops(a, DropHandshakeFailed)
	m.net.Inject(b.ul, a.ul, fb)
	waitFor(t, "the forged response refused", 5*time.Second, func() bool { return drops(a, DropHandshakeFailed) > failed })

	start := time.Now()
	m.net.Inject(b.ul, a.ul, resp)
	expect(t, b, pa, 3*time.Second)
	if c := a.dev.Counters(); c.HandshakesInitiated != 1 {
		t.Fatalf("a sent %d initiations, want 1: the genuine response did not complete the handshake", c.HandshakesInitiated)
	}
	t.Logf("session up %v after the genuine response", time.Since(start))
}
