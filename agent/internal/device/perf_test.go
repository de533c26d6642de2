package device

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/faketun"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/filter"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// pairWithSink starts two nodes whose second TUN counts delivered packets
// instead of queueing them.
func pairWithSink(t testing.TB) (*mesh, *atomic.Uint64) {
	var delivered atomic.Uint64
	m := newMeshStopped(t, 2, fastTiming())
	m.tunHook = func(i int, tun *faketun.Device) {
		if i == 1 {
			tun.Sink = func([]byte) { delivered.Add(1) }
		}
	}
	m.startAll()
	a, b := m.nodes[0], m.nodes[1]
	if _, _, err := a.dev.Ping(t.Context(), b.ip); err != nil { // establishes the session
		t.Fatal(err)
	}
	return m, &delivered
}

// testBatch is a batch of n packets of size bytes for the a->b session,
// built outside any pool so allocation counts are exact.
func testBatch(m *mesh, n, size int) (*batch, *peer, *keypair, *keypair) {
	a, b := m.nodes[0], m.nodes[1]
	pa := a.dev.peerFor(b)
	pb := b.dev.peerFor(a)
	kpA := pa.keypairs.currentKeypair()
	kpB := b.dev.indices.lookup(kpA.remoteIndex).keypair
	pkt := udpPacket(a, b, string(make([]byte, size-28)))
	bt := &batch{peer: pa, elems: make([]*elem, n), bufs: make([][]byte, 0, n), gro: make([]groFlow, 0, n)}
	for i := range bt.elems {
		e := &elem{buf: make([]byte, smallBufSize)} // as from the TUN or the receive loop
		copy(e.buf[wire.TransportHeaderSize:], pkt)
		bt.elems[i] = e
	}
	return bt, pb, kpA, kpB
}

func fill(bt *batch, kpA *keypair, size int) {
	for _, e := range bt.elems {
		e.packet = e.buf[wire.TransportHeaderSize : wire.TransportHeaderSize+size]
		e.keypair = kpA
		e.counter = kpA.sendCounter.Add(1) - 1
	}
}

func toReceiver(bt *batch, kpB *keypair) {
	for _, e := range bt.elems {
		e.keypair = kpB
	}
}

// TestPacketPathNoAlloc proves the per-packet path (flow hash, encrypt,
// queue discipline, decrypt, replay window, parse, allowed-IPs, ping check,
// the packet filter of package filter, TUN write batch) does not allocate.
func TestPacketPathNoAlloc(t *testing.T) {
	m, delivered := pairWithSink(t)
	a, b := m.nodes[0], m.nodes[1]
	flt := filter.New(filter.Config{Self: b.ip})
	if err := flt.SetFilter(&api.Filter{PolicyVersion: 1, Rules: []api.FilterRule{{Name: "a-udp",
		Sources: []netip.Prefix{netip.PrefixFrom(a.ip, 32)}, Protocol: "udp"}}}); err != nil {
		t.Fatal(err)
	}
	cfg := m.config(1)
	cfg.Filter = flt
	if err := m.nodes[1].dev.Reconfig(cfg); err != nil {
		t.Fatal(err)
	}
	const n, size = 16, 1400
	bt, pb, kpA, kpB := testBatch(m, n, size)
	enc, dec := new([12]byte), new([12]byte)
	before := delivered.Load()
	allocs := testing.AllocsPerRun(200, func() {
		fill(bt, kpA, size)
		for _, e := range bt.elems {
			e.flow = uint16(flowBucket(e.packet))
		}
		a.dev.encryptBatch(bt, enc)
		bt.enq = mono()
		bt.peer.codelDrop(&bt.peer.tx, bt, mono()) // no drop: no sojourn
		toReceiver(bt, kpB)
		decryptBatch(bt, dec)
		pb.receiveBatch(bt)
	})
	if allocs != 0 {
		t.Fatalf("per-batch allocations = %v, want 0", allocs)
	}
	if got := delivered.Load() - before; got != 201*n {
		t.Fatalf("delivered %d packets, want %d", got, 201*n)
	}
	if st := flt.Stats(); st.RuleAccepts["a-udp"] != 201*n {
		t.Fatalf("filter accepted %d packets, want %d", st.RuleAccepts["a-udp"], 201*n)
	}
}

func BenchmarkEncrypt(b *testing.B) {
	for _, size := range []int{64, 1420} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			m, _ := pairWithSink(b)
			bt, _, kpA, _ := testBatch(m, 64, size)
			nonce := new([12]byte)
			d := m.nodes[0].dev
			b.SetBytes(int64(size * 64))
			b.ReportAllocs()
			for b.Loop() {
				fill(bt, kpA, size)
				d.encryptBatch(bt, nonce)
			}
		})
	}
}

func BenchmarkDecryptReceive(b *testing.B) {
	for _, size := range []int{64, 1420} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			m, _ := pairWithSink(b)
			bt, pb, kpA, kpB := testBatch(m, 64, size)
			enc, dec := new([12]byte), new([12]byte)
			d := m.nodes[0].dev
			// Encrypt a fresh batch each round outside the timer.
			b.SetBytes(int64(size * 64))
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				fill(bt, kpA, size)
				d.encryptBatch(bt, enc)
				toReceiver(bt, kpB)
				b.StartTimer()
				decryptBatch(bt, dec)
				pb.receiveBatch(bt)
			}
		})
	}
}

// BenchmarkDevicePair pushes packets through two whole devices: fake TUN,
// staging, parallel encryption, in-memory UDP, parallel decryption, ordered
// delivery to the second fake TUN. The peer queues are plain FIFOs: the
// injector never slows down, so the queue discipline would drop most of
// what it sends (that is BenchmarkPeerQueue's subject); this measures what
// a packet costs.
func BenchmarkDevicePair(b *testing.B) {
	for _, size := range []int{64, 1420} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			m, delivered := pairWithSink(b)
			m.net.SetBlocking(true)
			a, bn := m.nodes[0], m.nodes[1]
			a.dev.fifo.Store(true)
			bn.dev.fifo.Store(true)
			pkt := udpPacket(a, bn, string(make([]byte, size-28)))
			start := delivered.Load()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.tun.InjectShared(pkt)
			}
			deadline := time.Now().Add(30 * time.Second)
			for delivered.Load()-start < uint64(b.N) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			if got := delivered.Load() - start; got < uint64(b.N) {
				b.Logf("delivered %d of %d (drops: %v)", got, b.N, a.dev.Counters().Drops)
			}
		})
	}
}

// TestPoolsTrimAfterLoad checks that the free lists, warm after load, are
// emptied (and memory handed back) once the device goes quiet.
func TestPoolsTrimAfterLoad(t *testing.T) {
	m, got := pairWithSink(t)
	a, b := m.nodes[0], m.nodes[1]
	pkt := udpPacket(a, b, "load")
	idle := func(d *Device) int {
		return d.pools.small.idle() + d.pools.large.idle() + d.pools.batches.idle()
	}
	const n = trimIdleAfterPackets + 4096
	warm := 0 // most idle elements seen on a during the load
	for i := 0; i < n; i++ {
		if !a.tun.InjectShared(pkt) {
			t.Fatal("inject failed")
		}
		if i%256 == 255 { // the fake network drops when queues are full
			waitFor(t, "the load delivered", 10*time.Second, func() bool { return got.Load() >= uint64(i*3/4) })
			warm = max(warm, idle(a.dev))
		}
	}
	waitFor(t, "the load delivered", 10*time.Second, func() bool { return got.Load() >= n*3/4 })
	if warm == 0 {
		t.Fatal("no idle elements during the load: nothing to trim, the test proves nothing")
	}
	waitFor(t, "free lists of both devices emptied", 5*time.Second, func() bool {
		return idle(a.dev) == 0 && idle(b.dev) == 0
	})
	before := got.Load()
	a.tun.Inject(pkt)
	waitFor(t, "a packet after the trim", 2*time.Second, func() bool { return got.Load() > before })
}
