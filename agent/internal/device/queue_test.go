package device

import (
	"slices"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/faketun"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet/packettest"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

func TestCoDel(t *testing.T) {
	var c codel
	ms := int64(time.Millisecond)
	now := int64(1)
	// Below target: never drops, however long.
	for range 100 {
		now += ms
		if c.shouldDrop(codelTarget.Nanoseconds()/2, now, 100) {
			t.Fatal("dropped below the target")
		}
	}
	// Above target: no drop within the first interval, then one.
	start := now
	var first int64
	for first == 0 {
		now += ms / 10
		if c.shouldDrop(2*codelTarget.Nanoseconds(), now, 100) {
			first = now
		}
	}
	if first-start < codelInterval.Nanoseconds() {
		t.Fatalf("first drop %v after the sojourn rose, want at least the interval %v", time.Duration(first-start), codelInterval)
	}
	// Still above: the drops come faster and faster (interval/sqrt(count)).
	var drops []int64
	for len(drops) < 8 {
		now += ms / 10
		if c.shouldDrop(2*codelTarget.Nanoseconds(), now, 100) {
			drops = append(drops, now)
		}
	}
	if gap0, gapN := drops[1]-drops[0], drops[7]-drops[6]; gapN >= gap0 {
		t.Fatalf("drop gaps did not shrink: first %v, last %v", time.Duration(gap0), time.Duration(gapN))
	}
	// Back below target: dropping stops at once.
	if c.shouldDrop(0, now+ms, 100) || c.dropping {
		t.Fatal("still dropping below the target")
	}
	// A queue of one packet is never dropped from.
	var c2 codel
	for i := range 1000 {
		if c2.shouldDrop(time.Second.Nanoseconds(), int64(i)*ms, 1) {
			t.Fatal("dropped the only packet queued")
		}
	}
}

// TestQueueLimitWithinReplayWindow: a sparse packet overtakes at most the
// packets queued on both sides plus one read, all within the receiver's
// replay window.
func TestQueueLimitWithinReplayWindow(t *testing.T) {
	const window = (1<<7 - 1) * 64 // golang.zx2c4.com/wireguard/replay's windowSize
	if most := 2*queueMaxPackets + conn.IdealBatchSize; most >= window {
		t.Fatalf("a sparse packet may overtake %d packets, beyond the replay window of %d", most, window)
	}
}

func TestFlowBucket(t *testing.T) {
	src, dst := [4]byte{100, 64, 0, 1}, [4]byte{100, 64, 0, 2}
	a := faketun.UDPPacket(src, dst, 1000, 2000, []byte("one"))
	a2 := faketun.UDPPacket(src, dst, 1000, 2000, []byte("another payload"))
	if flowBucket(a) != flowBucket(a2) {
		t.Fatal("two packets of one flow in different buckets")
	}
	// Different ports spread over the buckets.
	seen := map[uint32]bool{}
	for port := range uint16(64) {
		seen[flowBucket(faketun.UDPPacket(src, dst, 1000+port, 2000, nil))] = true
	}
	if len(seen) < 48 {
		t.Fatalf("64 flows fell into %d buckets", len(seen))
	}
	for _, bad := range [][]byte{nil, {0x45}, {0x60, 0, 0}, {0x10, 1, 2, 3}} {
		if b := flowBucket(bad); b != 0 {
			t.Fatalf("flowBucket(%x) = %d, want 0", bad, b)
		}
	}
	if n := testing.AllocsPerRun(100, func() { flowBucket(a) }); n != 0 {
		t.Fatalf("flowBucket allocates %v times", n)
	}
}

// pairWithBind starts two nodes whose second TUN discards what it gets and
// whose first sends through wrap's bind, with a session between them.
func pairWithBind(t testing.TB, wrap func(Bind) Bind) *mesh {
	m := newMeshStopped(t, 2, fastTiming())
	m.tunHook = func(i int, tun *faketun.Device) {
		if i == 1 {
			tun.Sink = func([]byte) {}
		}
	}
	m.bindWrap = func(i int, b Bind) Bind {
		if i == 0 {
			return wrap(b)
		}
		return b
	}
	m.startAll()
	if _, _, err := m.nodes[0].dev.Ping(t.Context(), m.nodes[1].ip); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSparseSkipsQueue: with a bulk flow's batches queued for a peer, a
// packet of another flow goes out before them, and the bulk flow's own
// packets stay in order.
func TestSparseSkipsQueue(t *testing.T) {
	sent := &orderBind{}
	m := pairWithBind(t, sent.wrap)
	a, bn := m.nodes[0], m.nodes[1]
	d := a.dev
	p := d.peerFor(bn)
	base := len(sent.sizes()) // the ping
	// Hold the sequential sender: batches queue behind this one.
	hold := d.pools.getBatch(p)
	hold.mu.Lock()
	var once sync.Once
	release := func() { once.Do(hold.mu.Unlock) }
	t.Cleanup(release) // before the devices close
	p.txInflight.Add(1)
	p.outbound <- hold

	bulk := udpPacket(a, bn, string(make([]byte, 1000)))
	sparse := faketun.UDPPacket(a.ip.As4(), bn.ip.As4(), 3000, 4000, make([]byte, 72))
	sparseWire := wire.TransportMinSize + wire.PaddedLen(len(sparse), int(d.mtu.Load()))
	bulkWire := wire.TransportMinSize + wire.PaddedLen(len(bulk), int(d.mtu.Load()))
	var pb peerBatches
	read := func(pkts ...[]byte) {
		for _, pkt := range pkts {
			e := d.pools.getElem()
			e.packet = e.buf[wire.TransportHeaderSize : wire.TransportHeaderSize+copy(e.buf[wire.TransportHeaderSize:], pkt)]
			pb.addFlow(d, p, e)
		}
		d.sendRead(&pb)
	}
	// Nothing of the bulk flow was queued, but the read holds a burst of
	// it: the burst stays whole, none of it goes out alone.
	read(bulk, bulk, bulk, bulk, bulk)
	read(bulk, sparse, bulk)
	if got, want := sent.sizes()[base:], []int{sparseWire}; !slices.Equal(got, want) {
		t.Fatalf("sent %v while the bulk flow was queued, want %v", got, want)
	}
	if q := p.tx.packets.Load(); q != 7 {
		t.Fatalf("%d packets queued, want 7", q)
	}
	release()
	waitFor(t, "the bulk packets to leave", 30*time.Second, func() bool { return len(sent.sizes()) >= base+8 })
	for i, n := range sent.sizes()[base+1:] {
		if n != bulkWire {
			t.Fatalf("datagram %d after the sparse one is %d bytes, want the bulk flow's %d: %v", i, n, bulkWire, sent.sizes())
		}
	}
	waitFor(t, "the queue to empty", 30*time.Second, func() bool { return p.tx.packets.Load() == 0 })
	var total uint64
	for _, n := range p.tx.stats().Sojourn {
		total += n
	}
	if total < 8 {
		t.Fatalf("sojourn recorded for %d packets, want at least 8", total)
	}
	for fb := range p.tx.flows {
		if n := p.tx.flows[fb].Load(); n != 0 {
			t.Fatalf("flow bucket %d still counts %d packets", fb, n)
		}
	}
}

// TestSparseSkipsReceiveQueue: with large datagrams queued for a peer on
// the receiving side, a small one is delivered before them; the large ones
// follow in order.
// TestSparseSkipsReceiveQueue holds B's sequential receiver with bulk
// datagrams queued behind it, then sends small packets: those that no
// packet of their flow can be hurt by (a TCP ACK, a ping) are delivered at
// once; small data (a UDP datagram, a TCP segment with data, a FIN) keeps
// its place behind the bulk, in order.
func TestSparseSkipsReceiveQueue(t *testing.T) {
	var mu sync.Mutex
	var got []string
	m := newMeshStopped(t, 2, fastTiming())
	m.tunHook = func(i int, tun *faketun.Device) {
		if i == 1 {
			tun.Sink = func(pkt []byte) {
				mu.Lock()
				got = append(got, kindOf(pkt))
				mu.Unlock()
			}
		}
	}
	m.startAll()
	a, bn := m.nodes[0], m.nodes[1]
	if _, _, err := a.dev.Ping(t.Context(), bn.ip); err != nil {
		t.Fatal(err)
	}
	received := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	base := len(received())
	// Hold b's sequential receiver: batches queue behind this one.
	pb := bn.dev.peerFor(a)
	hold := bn.dev.pools.getBatch(pb)
	hold.mu.Lock()
	var once sync.Once
	release := func() { once.Do(hold.mu.Unlock) }
	t.Cleanup(release) // before the devices close
	pb.rxInflight.Add(1)
	pb.inbound <- hold

	bulk := udpPacket(a, bn, string(make([]byte, 1000)))
	for range 4 {
		a.tun.Inject(bulk)
	}
	waitFor(t, "the large datagrams to queue", 30*time.Second, func() bool { return pb.rx.packets.Load() == 4 })
	src, dst := a.ip, bn.ip
	const ack, psh, fin = 0x10, 0x08, 0x01
	small := [][]byte{
		packettest.IPv4(src, dst, packet.ProtoUDP, packettest.UDP(3000, 4000, make([]byte, 72))),
		packettest.IPv4(src, dst, packet.ProtoTCP, packettest.TCP(5000, 22, ack)),
		packettest.IPv4(src, dst, packet.ProtoTCP, append(packettest.TCP(5001, 22, ack|psh), make([]byte, 20)...)),
		packettest.IPv4(src, dst, packet.ProtoICMP, packettest.ICMP(packet.ICMPEchoReply, bn.dev.ping.id+1, 1, make([]byte, 8))),
		packettest.IPv4(src, dst, packet.ProtoTCP, packettest.TCP(5002, 22, ack|fin)),
	}
	for _, pkt := range small {
		a.tun.Inject(pkt)
	}
	waitFor(t, "the ACK and the ping", 30*time.Second, func() bool { return len(received()) >= base+2 })
	if r := received()[base:]; !slices.Equal(r, []string{"tcp-ack", "icmp"}) {
		t.Fatalf("delivered %v while large datagrams were queued, want [tcp-ack icmp]", r)
	}
	waitFor(t, "the small data packets to queue", 30*time.Second, func() bool { return pb.rx.packets.Load() == 4+3 })
	release()
	want := []string{"tcp-ack", "icmp", "bulk", "bulk", "bulk", "bulk", "udp-small", "tcp-data", "tcp-fin"}
	waitFor(t, "everything", 30*time.Second, func() bool { return len(received()) >= base+len(want) })
	if r := received()[base:]; !slices.Equal(r, want) {
		t.Fatalf("delivered %v, want %v", r, want)
	}
}

// kindOf names a test packet for TestSparseSkipsReceiveQueue.
func kindOf(pkt []byte) string {
	var p packet.Parsed
	switch {
	case !p.Parse(pkt):
		return "malformed"
	case p.Proto == packet.ProtoICMP:
		return "icmp"
	case p.Proto == packet.ProtoUDP && len(pkt) > 500:
		return "bulk"
	case p.Proto == packet.ProtoUDP:
		return "udp-small"
	case p.Proto == packet.ProtoTCP && p.TCPFlags&0x01 != 0:
		return "tcp-fin"
	case p.Proto == packet.ProtoTCP && len(pkt) > 40:
		return "tcp-data"
	case p.Proto == packet.ProtoTCP:
		return "tcp-ack"
	}
	return "other"
}

// orderBind records the sizes of the datagrams sent, in order.
type orderBind struct {
	Bind
	mu   sync.Mutex
	sent []int
}

func (o *orderBind) wrap(b Bind) Bind { o.Bind = b; return o }

func (o *orderBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	o.mu.Lock()
	for _, b := range bufs {
		o.sent = append(o.sent, len(b))
	}
	o.mu.Unlock()
	return o.Bind.Send(bufs, ep)
}

func (o *orderBind) sizes() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.sent)
}

// sojournBind timestamps the sparse flow's datagrams (sparseWire bytes) as
// they leave, against the times the benchmark queued them, in order.
type sojournBind struct {
	Bind
	mu       sync.Mutex
	stamps   []int64 // queued, not yet sent
	samples  []int64
	bulk     uint64 // bulk bytes sent
	sparseSz int
}

func (s *sojournBind) push(t int64) {
	s.mu.Lock()
	s.stamps = append(s.stamps, t)
	s.mu.Unlock()
}

func (s *sojournBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	now := mono()
	s.mu.Lock()
	for _, b := range bufs {
		if len(b) == s.sparseSz && len(s.stamps) > 0 {
			s.samples = append(s.samples, now-s.stamps[0])
			s.stamps = s.stamps[1:]
		} else {
			s.bulk += uint64(len(b))
		}
	}
	s.mu.Unlock()
	return s.Bind.Send(bufs, ep)
}

// BenchmarkPeerQueue drives one peer's send queue as the TUN reader does,
// with reads of 32 packets of a bulk flow that never slows down, one read
// in 8 carrying a packet of a sparse flow (a ping), and reports the sparse
// flow's sojourn time from the reader to the bind (p50, p99), the bulk
// bytes sent, and the packets the discipline dropped; "fifo" is the same
// without the discipline (the reader blocks when the queues are full).
func BenchmarkPeerQueue(b *testing.B) {
	for _, fifo := range []bool{false, true} {
		name := "fq_codel"
		if fifo {
			name = "fifo"
		}
		b.Run(name, func(b *testing.B) {
			sb := &sojournBind{}
			m := pairWithBind(b, func(x Bind) Bind { sb.Bind = x; return sb })
			a, bn := m.nodes[0], m.nodes[1]
			d := a.dev
			d.fifo.Store(fifo)
			bn.dev.fifo.Store(fifo)
			p := d.peerFor(bn)
			bulk := udpPacket(a, bn, string(make([]byte, 1400-28)))
			sparse := faketun.UDPPacket(a.ip.As4(), bn.ip.As4(), 3000, 4000, make([]byte, 72))
			sb.mu.Lock()
			sb.sparseSz = wire.TransportMinSize + wire.PaddedLen(len(sparse), int(d.mtu.Load()))
			sb.mu.Unlock()
			const readSize, sparseEvery = 32, 8
			const off = wire.TransportHeaderSize
			var pb peerBatches
			drops0 := d.Counters().Drops
			start := time.Now()
			reads := 0
			for b.Loop() {
				for k := range readSize {
					pkt := bulk
					isSparse := reads%sparseEvery == 0 && k == readSize/2
					if isSparse {
						pkt = sparse
					}
					e := d.pools.getElem()
					e.packet = e.buf[off : off+copy(e.buf[off:], pkt)]
					if isSparse {
						sb.push(mono())
					}
					pb.addFlow(d, p, e)
				}
				d.sendRead(&pb)
				reads++
			}
			elapsed := time.Since(start)
			waitFor(b, "the sparse packets to leave", 30*time.Second, func() bool {
				sb.mu.Lock()
				defer sb.mu.Unlock()
				return len(sb.stamps) == 0
			})
			sb.mu.Lock()
			samples := slices.Clone(sb.samples)
			bulkBytes := sb.bulk
			sb.mu.Unlock()
			slices.Sort(samples)
			pct := func(q float64) float64 {
				if len(samples) == 0 {
					return 0
				}
				return float64(samples[min(len(samples)-1, int(q*float64(len(samples))))]) / 1e3
			}
			dr := d.Counters().Drops
			b.ReportMetric(pct(0.5), "sparse-p50-µs")
			b.ReportMetric(pct(0.99), "sparse-p99-µs")
			b.ReportMetric(float64(bulkBytes)*8/elapsed.Seconds()/1e6, "bulk-Mbit/s")
			b.ReportMetric(float64(dr[DropCoDel]-drops0[DropCoDel]+dr[DropQueueFull]-drops0[DropQueueFull])/float64(reads*readSize), "dropped/pkt")
		})
	}
}
