package device

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/icmp"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// The send path, as in wireguard-go:
//
//	TUN reader: one parse per packet (package packet) for the MTU check,
//	the peer lookup and the filter
//	  --(per-peer batches)--> peer.staged
//	  sendStaged: assign keypair and counters, lock the batch, queue it on
//	  peer.outbound (order) and d.encQueue (parallel)
//	encryption workers (one per CPU): encrypt in place, unlock the batch
//	peer's sequential sender: wait for each batch in order, send it via the bind

// inlineMax is the largest batch an idle peer's packets may skip the
// queues with. Bigger batches go through the parallel crypto workers.
const inlineMax = 4

// peerBatches groups the packets of one read by peer and class (sparse or
// not: queue.go) without allocating.
type peerBatches struct {
	list []*batch
}

// find returns the batch of p and class sparse, creating it.
func (pb *peerBatches) find(d *Device, p *peer, sparse bool) *batch {
	for _, b := range pb.list {
		if b.peer == p && b.sparse == sparse {
			return b
		}
	}
	b := d.pools.getBatch(p)
	b.sparse = sparse
	pb.list = append(pb.list, b)
	return b
}

// addFlow adds e, a packet from the TUN for p, counting it in its flow's
// bucket: it is sparse when no other packet of its flow is queued or in
// this read. The second packet of a flow in one read takes the first out
// of the sparse batch: a burst leaves as one batch (one GSO send, one TUN
// GRO write at the other end), not as a lone packet and the rest.
func (pb *peerBatches) addFlow(d *Device, p *peer, e *elem) {
	fb := flowBucket(e.packet)
	e.flow = uint16(fb)
	n := p.tx.flows[fb].Add(1)
	if d.fifo.Load() {
		n = 2
	}
	b := pb.find(d, p, n == 1)
	b.flows = true
	if n == 2 {
		pb.unspare(p, uint16(fb), b)
	}
	b.elems = append(b.elems, e)
}

// unspare moves the packet of flow bucket fb in p's sparse batch of this
// read, if there is one, to the end of b, p's batch of queued packets.
func (pb *peerBatches) unspare(p *peer, fb uint16, b *batch) {
	for _, s := range pb.list {
		if s.peer != p || !s.sparse {
			continue
		}
		for i, e := range s.elems {
			if e.flow == fb {
				b.elems = append(b.elems, e)
				copy(s.elems[i:], s.elems[i+1:])
				s.elems[len(s.elems)-1] = nil
				s.elems = s.elems[:len(s.elems)-1]
				return
			}
		}
		return
	}
}

// addHeld adds e, a received packet for keypair kp, to p's batch, taking a
// reference to kp's keys unless the batch already holds one. It reports
// false, adding nothing, when kp's keys are gone (retired and wiped).
// A datagram of at most sparseMaxWire bytes goes into p's sparse batch.
func (pb *peerBatches) addHeld(d *Device, p *peer, e *elem, kp *keypair) bool {
	sparse := len(e.packet) <= sparseMaxWire && !d.fifo.Load()
	var b *batch
	for _, x := range pb.list {
		if x.peer == p && x.sparse == sparse {
			b = x
			break
		}
	}
	// Every packet of kp already in the batch holds a reference or came
	// after one that does: finding the latest is enough (and with one
	// session, it is the last packet).
	held := false
	if b != nil {
		for i := len(b.elems) - 1; i >= 0; i-- {
			if b.elems[i].keypair == kp {
				held = true
				break
			}
		}
	}
	if !held {
		if !kp.acquire() {
			return false
		}
		e.ref = true
	}
	e.keypair = kp
	if b == nil {
		b = d.pools.getBatch(p)
		b.sparse = sparse
		pb.list = append(pb.list, b)
	}
	b.elems = append(b.elems, e)
	return true
}

func (pb *peerBatches) reset() {
	clear(pb.list)
	pb.list = pb.list[:0]
}

// routineReadFromTUN reads IP packets from the TUN until it fails or closes.
func (d *Device) routineReadFromTUN() {
	defer d.wgReaders.Done()
	const offset = wire.TransportHeaderSize
	n := d.tun.BatchSize()
	elems := make([]*elem, n)
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for i := range elems {
		elems[i] = d.pools.getElemMTU(int(d.mtu.Load()))
		bufs[i] = elems[i].buf
	}
	defer func() {
		for _, e := range elems {
			d.pools.putElem(e)
		}
	}()
	pb := peerBatches{list: make([]*batch, 0, n)}
	tb := tooBig{buf: make([]byte, offset+icmp.MaxIPv6Answer), bufs: make([][]byte, 1)}
	large := len(bufs[0]) != smallBufSize
	var pp packet.Parsed // one allocation for the reader's life: the filter's interface call makes it escape
	var backoff time.Duration
	for {
		if mtu := int(d.mtu.Load()); (mtu > smallMTUMax) != large {
			// The MTU moved across the small buffers' limit: swap the read
			// set for buffers of the right size.
			for i, e := range elems {
				d.pools.putElem(e)
				elems[i] = d.pools.getElemMTU(mtu)
				bufs[i] = elems[i].buf
			}
			large = mtu > smallMTUMax
		}
		count, err := d.tun.Read(bufs, sizes, offset)
		mtu := int(d.mtu.Load())
		filter := d.filter.Load()
		var lastDst netip.Addr // the lookup cache lives for one read only
		var lastPeer *peer
		for i := 0; i < count; i++ {
			size := sizes[i]
			if size == 0 {
				continue
			}
			if offset+size >= len(bufs[i]) {
				// Filled the buffer (the TUN's MTU above the tunnel's): maybe
				// truncated, so no ICMP answer can quote it.
				d.counters.drop(DropTooBig)
				continue
			}
			pkt := elems[i].buf[offset : offset+size]
			ok := pp.Parse(pkt)
			if size > mtu {
				d.counters.drop(DropTooBig)
				if ok {
					tb.answer(d, &pp, mtu)
				}
				continue
			}
			if !ok {
				d.counters.drop(DropMalformedInner)
				continue
			}
			dst := pp.Dst
			p := lastPeer // a read's packets mostly go to one peer
			if dst != lastDst || p == nil {
				p = d.peerByIP(dst)
				lastDst, lastPeer = dst, p
			}
			if p == nil {
				d.counters.drop(DropNoPeer)
				continue
			}
			if filter != nil {
				filter.Outbound(&pp)
			}
			e := elems[i]
			e.packet = pkt
			pb.addFlow(d, p, e)
			elems[i] = d.pools.getElemMTU(mtu)
			bufs[i] = elems[i].buf
		}
		d.sendRead(&pb)
		if err != nil {
			if errors.Is(err, tun.ErrTooManySegments) {
				d.counters.drop(DropTooBig)
				continue
			}
			if d.isClosed() || errors.Is(err, os.ErrClosed) {
				return
			}
			// A packet the TUN could not hand over (e.g. larger than the
			// buffer): drop it and go on, backing off if errors persist.
			d.counters.drop(DropTooBig)
			d.log.Debug("read from tun failed", "err", err)
			backoff = min(max(2*backoff, time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-d.closing:
				return
			}
			continue
		}
		backoff = 0
	}
}

// sendRead stages and sends the batches of one TUN read and resets pb.
// Sparse batches go first: their packets leave before the queued ones of
// the read, and each is its flow's first.
func (d *Device) sendRead(pb *peerBatches) {
	for _, sparse := range [2]bool{true, false} {
		for i, b := range pb.list {
			if b == nil || b.sparse != sparse {
				continue
			}
			pb.list[i] = nil       // b belongs to the peer's queues once staged
			if len(b.elems) == 0 { // a sparse batch whose packets unspare moved
				d.pools.putBatch(b)
				continue
			}
			p := b.peer
			p.stage(b)
			p.sendStaged()
		}
	}
	pb.reset()
}

// tooBig answers packets too big for the tunnel with ICMP "fragmentation
// needed" / "packet too big" written back into the TUN, so the sender's path
// MTU discovery lowers the route's MTU. Its buffers belong to the TUN reader.
type tooBig struct {
	buf  []byte   // offset + icmp.MaxIPv6Answer
	bufs [][]byte // one slot, for tun.Write
}

func (tb *tooBig) answer(d *Device, pp *packet.Parsed, mtu int) {
	const offset = wire.TransportHeaderSize
	n := icmp.FragNeeded(tb.buf[offset:], pp, mtu)
	if n == 0 {
		return
	}
	tb.bufs[0] = tb.buf[:offset+n]
	if _, err := d.tun.Write(tb.bufs, offset); err != nil {
		if !d.isClosed() {
			d.log.Debug("write icmp frag-needed to tun failed", "err", err)
		}
		return
	}
	d.counters.fragNeededSent.Add(1)
}

// stage queues b for p, dropping the oldest staged batch when full.
func (p *peer) stage(b *batch) {
	for {
		select {
		case p.staged <- b:
			return
		default:
		}
		select {
		case old := <-p.staged:
			for range old.elems {
				p.d.counters.drop(DropQueueFull)
			}
			p.d.pools.putBatch(old)
		default:
		}
	}
}

// sendKeepalive sends an empty transport message unless data is waiting.
func (p *peer) sendKeepalive() {
	if len(p.staged) == 0 {
		e := p.d.pools.getElem()
		e.packet = e.buf[wire.TransportHeaderSize:wire.TransportHeaderSize]
		b := p.d.pools.getBatch(p)
		b.elems = append(b.elems, e)
		select {
		case p.staged <- b:
		default:
			p.d.pools.putBatch(b)
		}
	}
	p.sendStaged()
}

// sendStaged sends the staged batches if a usable session exists, and
// starts a handshake otherwise or when the session is due for rekeying.
func (p *peer) sendStaged() {
	d := p.d
	p.sendMu.Lock()
	if p.stopped {
		p.sendMu.Unlock()
		p.drainStaged()
		return
	}
	kp := p.keypairs.currentKeypair()
	now := time.Now()
	if kp == nil || kp.dead.Load() || now.Sub(kp.created) >= d.timing.rejectAfterTime ||
		kp.sendCounter.Load() >= d.timing.rejectAfterMessages || !kp.acquire() {
		p.sendMu.Unlock()
		// A fresh responder session waits for the initiator's first packet;
		// starting a competing handshake would only replace it.
		if next := p.keypairs.next.Load(); next != nil && now.Sub(next.created) < d.timing.rekeyTimeout {
			if !p.timers.retransmitHandshake.pending.Load() {
				p.timers.retransmitHandshake.mod(d.timing.rekeyTimeout - now.Sub(next.created))
			}
			return
		}
		if len(p.staged) > 0 {
			p.initiateHandshake(false)
		}
		return
	}
	for {
		var b *batch
		select {
		case b = <-p.staged:
		default:
		}
		if b == nil {
			break
		}
		for _, e := range b.elems {
			e.keypair = kp
			e.counter = kp.sendCounter.Add(1) - 1
		}
		if len(b.elems) > 0 {
			kp.refs.Add(1) // cannot be the first: this loop holds one
			b.elems[0].ref = true
		}
		if b.sparse || len(b.elems) <= inlineMax && p.txInflight.Load() == 0 {
			// Sparse packets (queue.go), or nothing of this peer is
			// queued: send now, saving two goroutine hand-offs of
			// latency. sendMu keeps later batches behind this one.
			start := mono()
			d.encryptBatch(b, &p.inlineNonce)
			p.sendBatch(b)
			p.tx.record(mono()-start, len(b.elems))
			d.pools.putBatch(b)
			continue
		}
		if !p.tx.admit(len(b.elems), !d.fifo.Load()) {
			for range b.elems {
				d.counters.drop(DropQueueFull)
			}
			d.pools.putBatch(b)
			continue
		}
		b.q, b.enq = &p.tx, mono()
		p.txInflight.Add(1)
		b.mu.Lock()
		if !p.tx.queue(p, p.outbound, b) {
			b.mu.Unlock()
			p.txInflight.Add(-1)
			d.pools.putBatch(b)
			continue
		}
		d.encQueue <- b
	}
	p.sendMu.Unlock()
	kp.release()
	// Keep the key fresh (WireGuard's keepKeyFreshSending).
	if kp.initiator && (kp.sendCounter.Load() > d.timing.rekeyAfterMessages || now.Sub(kp.created) > d.timing.rekeyAfterTime) {
		p.initiateHandshake(false)
	}
}

// routineEncryption encrypts queued batches in place until the queue closes.
func (d *Device) routineEncryption() {
	defer d.wgWorkers.Done()
	nonce := new([12]byte) // one per worker: the AEAD interface call makes it escape
	for b := range d.encQueue {
		d.encryptBatch(b, nonce)
		b.mu.Unlock()
		// Under load the queue never runs dry and a worker never blocks:
		// without yielding, a goroutine made runnable meanwhile (the
		// sequential sender this batch unlocked, a reader the runtime's
		// network poll woke) would wait for the scheduler's 10 ms
		// preemption. A batch is a few tens of microseconds of work.
		runtime.Gosched()
	}
}

// encryptBatch pads, frames and seals every packet of b in place.
func (d *Device) encryptBatch(b *batch, nonce *[12]byte) {
	mtu := int(d.mtu.Load())
	for _, e := range b.elems {
		n := len(e.packet)
		padded := wire.PaddedLen(n, mtu)
		buf := e.buf[:]
		clear(buf[wire.TransportHeaderSize+n : wire.TransportHeaderSize+padded])
		wire.PutTransportHeader(buf, e.keypair.remoteIndex, e.counter)
		binary.LittleEndian.PutUint64(nonce[4:], e.counter)
		e.packet = e.keypair.send.Seal(buf[:wire.TransportHeaderSize], nonce[:],
			buf[wire.TransportHeaderSize:wire.TransportHeaderSize+padded], nil)
	}
	releaseRefs(b)
}

// releaseRefs drops the references b's elements hold on their keypairs'
// keys, once b is sealed or opened.
func releaseRefs(b *batch) {
	for _, e := range b.elems {
		if e.ref {
			e.keypair.release()
			e.ref = false
		}
	}
}

// routineSequentialSender sends p's encrypted batches in order.
func (p *peer) routineSequentialSender() {
	defer p.wg.Done()
	d := p.d
	for {
		var b *batch
		select {
		case <-p.stopCh:
			return
		case b = <-p.outbound:
		}
		b.mu.Lock()
		//lint:ignore SA2001 the batch is locked until the encryption worker is done with it
		b.mu.Unlock()
		p.codelDrop(&p.tx, b, mono())
		p.sendBatch(b)
		d.pools.putBatch(b)
		p.txInflight.Add(-1)
	}
}

func (p *peer) sendBatch(b *batch) {
	d := p.d
	ep := p.currentEndpoint()
	if ep == nil {
		for range b.elems {
			d.counters.drop(DropNoEndpoint)
		}
		return
	}
	dataSent := false
	b.bufs = b.bufs[:0]
	for _, e := range b.elems {
		b.bufs = append(b.bufs, e.packet)
		if len(e.packet) > wire.TransportMinSize {
			dataSent = true
		}
	}
	max := d.bind.BatchSize()
	if d.noSendBatching.Load() {
		max = 1
	}
	var sent, sentBytes uint64
	for i := 0; i < len(b.bufs); i += max {
		j := min(i+max, len(b.bufs))
		if j-i > 1 {
			d.prepareGSO(b, b.bufs[i:j])
		}
		if err := d.bind.Send(b.bufs[i:j], ep); err != nil {
			for k := i; k < j; k++ {
				d.counters.drop(DropSendFailed)
			}
			continue
		}
		for k := i; k < j; k++ {
			sentBytes += uint64(len(b.bufs[k]))
		}
		sent += uint64(j - i)
	}
	for k, e := range b.scratch {
		d.pools.putElem(e)
		b.scratch[k] = nil
	}
	b.scratch = b.scratch[:0]
	if sent == 0 {
		return
	}
	p.txPackets.Add(sent)
	p.txBytes.Add(sentBytes)
	d.counters.txPackets.Add(sent)
	d.counters.txBytes.Add(sentBytes)
	p.noteSent()
	p.timersAnyAuthenticatedPacketTraversal()
	p.timersAnyAuthenticatedPacketSent()
	if dataSent {
		p.timersDataSent()
	}
}

// Limits of UDP GSO, as conn.StdNetBind coalesces (bind_std.go).
const (
	gsoMaxDatagrams  = 64
	gsoMaxPayloadLen = 1<<16 - 1 - 20 - 8
)

// prepareGSO lets a UDP GSO bind coalesce bufs: conn.StdNetBind appends
// each run of equal-sized datagrams to the run's first buffer, which needs
// the room for it, and elements from the TUN are small. So the first
// datagram of every run of two or more moves into a 64 KiB scratch element
// (one copy per run of up to 64), returned to the pool after the send.
// The runs are found by the bind's own rules.
func (d *Device) prepareGSO(b *batch, bufs [][]byte) {
	for i := 0; i < len(bufs); {
		size := len(bufs[i])
		total, j := size, i+1
		for j < len(bufs) && j-i < gsoMaxDatagrams && len(bufs[j]) <= size && total+len(bufs[j]) <= gsoMaxPayloadLen {
			total += len(bufs[j])
			j++
			if len(bufs[j-1]) < size {
				break // a short datagram ends a run
			}
		}
		if j-i > 1 && cap(bufs[i]) < total {
			e := d.pools.getLargeElem()
			b.scratch = append(b.scratch, e)
			bufs[i] = e.buf[:copy(e.buf, bufs[i])]
		}
		i = j
	}
}
