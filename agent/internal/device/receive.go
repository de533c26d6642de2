package device

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// The receive path, as in wireguard-go:
//
//	bind receive func --(transport, per-peer batches)--> peer.inbound (order)
//	                                                   + d.decQueue (parallel)
//	                  --(handshake messages)--> d.hsQueue (bounded, dropped when full)
//	decryption workers: open the AEAD in place, mark each packet ok or not, unlock
//	peer's sequential receiver: replay window, roaming, timers, then for
//	each packet one parse (package packet) that allowed-IPs, ping replies,
//	the filter and TUN GRO all read, then one batched TUN write

// routineReceive reads datagrams from one bind receive func until the bind
// closes.
func (d *Device) routineReceive(fn conn.ReceiveFunc) {
	defer d.wgReaders.Done()
	n := d.bind.BatchSize()
	elems := make([]*elem, n)
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	eps := make([]conn.Endpoint, n)
	for i := range elems {
		elems[i] = d.pools.getLargeElem()
		bufs[i] = elems[i].buf[:]
	}
	defer func() {
		for _, e := range elems {
			d.pools.putElem(e)
		}
	}()
	pb := peerBatches{list: make([]*batch, 0, n)}
	nonce := new([12]byte)
	var pp packet.Parsed // receiveSparse's parse of small plaintexts
	var backoff time.Duration
	for {
		count, err := fn(bufs, sizes, eps)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || d.isClosed() {
				return
			}
			d.log.Debug("receive failed", "err", err)
			backoff = min(max(2*backoff, time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-d.closing:
				return
			}
			continue
		}
		backoff = 0
		for i := 0; i < count; i++ {
			size := sizes[i]
			if size == 0 {
				continue
			}
			e := elems[i]
			pkt := e.buf[:size]
			if size <= smallBufSize {
				// Keep the 64 KiB read buffer in its slot and carry the
				// datagram in a small element: a receiver under load holds
				// thousands of packets in its queues.
				e = d.pools.getElem()
				pkt = e.buf[:copy(e.buf, pkt)]
			}
			if pkt[0] == wire.TypeTransport {
				recv, ctr, err := wire.ParseTransportHeader(pkt)
				if err != nil {
					d.counters.drop(DropJunk)
					d.recycle(e, elems[i])
					continue
				}
				entry := d.indices.lookup(recv)
				kp := entry.keypair
				if kp == nil || kp.dead.Load() {
					d.counters.drop(DropUnknownIndex)
					d.recycle(e, elems[i])
					continue
				}
				e.packet = pkt
				e.counter = ctr
				e.endpoint = eps[i]
				if !pb.addHeld(d, kp.peer, e, kp) {
					e.packet, e.endpoint = nil, nil
					d.counters.drop(DropUnknownIndex)
					d.recycle(e, elems[i])
					continue
				}
			} else {
				// Sizes are checked before queueing, as in wireguard-go:
				// a message of the wrong size would hold a place in the
				// handshake queue (and perhaps a 64 KiB buffer) for nothing.
				if typ, err := wire.Type(pkt); err != nil || size != handshakeSize(typ) {
					d.counters.drop(DropJunk)
					d.recycle(e, elems[i])
					continue
				}
				e.packet = pkt
				e.endpoint = eps[i]
				select {
				case d.hsQueue <- e:
				default:
					d.counters.drop(DropQueueFull)
					e.endpoint = nil
					d.recycle(e, elems[i])
					continue
				}
			}
			eps[i] = nil
			if e == elems[i] { // the slot's buffer went with the packet
				elems[i] = d.pools.getLargeElem()
				bufs[i] = elems[i].buf
			}
		}
		for _, b := range pb.list {
			p := b.peer
			if b.sparse {
				// Small datagrams: what may overtake the queue is
				// delivered now, the rest keeps its place.
				if b = d.receiveSparse(p, b, nonce, &pp); b == nil {
					continue
				}
			}
			if len(b.elems) <= inlineMax && p.rxInflight.Load() == 0 && p.rxMu.TryLock() {
				// Nothing of this peer is queued: deliver now.
				start := mono()
				if !p.isStopped() {
					if !b.opened {
						decryptBatch(b, nonce)
					}
					p.receiveBatch(b)
				}
				p.rxMu.Unlock()
				p.rx.record(mono()-start, len(b.elems))
				d.pools.putBatch(b)
				continue
			}
			if !p.rx.admit(len(b.elems), !d.fifo.Load()) {
				for range b.elems {
					d.counters.drop(DropQueueFull)
				}
				d.pools.putBatch(b)
				continue
			}
			b.q, b.enq = &p.rx, mono()
			p.rxInflight.Add(1)
			if b.opened {
				// Decrypted already: only the order is left to keep.
				if !p.rx.queue(p, p.inbound, b) {
					p.rxInflight.Add(-1)
					d.pools.putBatch(b)
				}
				continue
			}
			b.mu.Lock()
			if !p.rx.queue(p, p.inbound, b) {
				b.mu.Unlock()
				p.rxInflight.Add(-1)
				d.pools.putBatch(b)
				continue
			}
			d.decQueue <- b
		}
		pb.reset()
	}
}

// receiveSparse opens b, p's small datagrams of one read, and delivers at
// once those that may overtake p's queued packets (overtakes), waiting
// only for a delivery in progress. It returns the others, opened, in a
// batch of their own that keeps its place behind the queue, or nil. pp is
// the caller's scratch parse.
func (d *Device) receiveSparse(p *peer, b *batch, nonce *[12]byte, pp *packet.Parsed) *batch {
	start := mono()
	decryptBatch(b, nonce)
	var late *batch
	kept := b.elems[:0]
	for _, e := range b.elems {
		if !e.ok || overtakes(pp, e.packet) {
			kept = append(kept, e)
			continue
		}
		if late == nil {
			late = d.pools.getBatch(p)
			late.opened = true
		}
		late.elems = append(late.elems, e)
	}
	clear(b.elems[len(kept):])
	b.elems = kept
	if len(b.elems) > 0 {
		p.rxMu.Lock()
		if !p.isStopped() {
			p.receiveBatch(b)
		}
		p.rxMu.Unlock()
		p.rx.record(mono()-start, len(b.elems))
	}
	d.pools.putBatch(b)
	return late
}

// recycle returns e, a copy the receive loop made of slot's datagram, to
// its pool (the slot keeps its buffer either way).
func (d *Device) recycle(e, slot *elem) {
	if e != slot {
		d.pools.putElem(e)
	}
}

// routineDecryption opens queued batches in place until the queue closes.
func (d *Device) routineDecryption() {
	defer d.wgWorkers.Done()
	nonce := new([12]byte)
	for b := range d.decQueue {
		decryptBatch(b, nonce)
		b.mu.Unlock()
		runtime.Gosched() // see routineEncryption
	}
}

// decryptBatch opens every packet of b in place and marks it ok or not.
func decryptBatch(b *batch, nonce *[12]byte) {
	for _, e := range b.elems {
		binary.LittleEndian.PutUint64(nonce[4:], e.counter)
		ct := e.packet[wire.TransportHeaderSize:]
		pt, err := e.keypair.recv.Open(ct[:0], nonce[:], ct, nil)
		e.ok = err == nil
		if e.ok {
			e.packet = pt
		}
	}
	releaseRefs(b)
}

// routineSequentialReceiver delivers p's decrypted batches in order.
func (p *peer) routineSequentialReceiver() {
	defer p.wg.Done()
	d := p.d
	for {
		var b *batch
		select {
		case <-p.stopCh:
			return
		case b = <-p.inbound:
		}
		b.mu.Lock()
		//lint:ignore SA2001 the batch is locked until the decryption worker is done with it
		b.mu.Unlock()
		p.codelDrop(&p.rx, b, mono())
		p.rxMu.Lock()
		p.receiveBatch(b)
		p.rxMu.Unlock()
		d.pools.putBatch(b)
		p.rxInflight.Add(-1)
	}
}

func (p *peer) receiveBatch(b *batch) {
	d := p.d
	now := time.Now()
	ip := p.meshIP()
	self := d.self()
	filter := d.filter.Load()
	pp := &p.rxParsed // rxMu is held
	var rxPackets, rxBytes uint64
	dataReceived := false
	var lastEndpoint conn.Endpoint
	var lastKeypair *keypair
	confirmed := false
	b.bufs = b.bufs[:0]
	b.gro = b.gro[:0]
	for _, e := range b.elems {
		if !e.ok {
			d.counters.drop(DropDecrypt)
			continue
		}
		kp := e.keypair
		if kp.dead.Load() || now.Sub(kp.created) >= d.timing.rejectAfterTime {
			d.counters.drop(DropExpired)
			continue
		}
		// Only now, with the tag verified, may the window move.
		if !kp.replay.ValidateCounter(e.counter, d.timing.rejectAfterMessages) {
			d.counters.drop(replayDrop(kp.rxMax, e.counter))
			continue
		}
		kp.rxMax = max(kp.rxMax, e.counter)
		rxPackets++
		rxBytes += uint64(len(e.packet) + wire.TransportMinSize)
		if kp != lastKeypair {
			if p.receivedWithKeypair(kp) {
				confirmed = true
			}
			lastKeypair = kp
		}
		if len(e.packet) == 0 {
			lastEndpoint = e.endpoint
			continue // keepalive
		}
		if p.receiveProbe(e.packet, e.endpoint, now) {
			// Recorded as what it is: a probe request proves only the
			// way in and must not count as an answer on its path.
			continue
		}
		lastEndpoint = e.endpoint
		dataReceived = true
		// The plaintext is padded: the parse cuts it to its IP length. An
		// IPv6 source stays IPv6 even when it is IPv4-mapped
		// (::ffff:a.b.c.d), so it never equals a peer's IPv4 mesh address
		// (WireGuard keeps IPv4 and IPv6 allowed IPs apart the same way).
		if !pp.Parse(e.packet) {
			d.counters.drop(DropMalformedInner)
			continue
		}
		if pp.Src != ip {
			d.counters.drop(DropAllowedIPs)
			continue
		}
		if d.ping.intercept(pp, p, self) {
			continue
		}
		if filter != nil && !filter.Inbound(pp) {
			d.counters.drop(DropFilter)
			continue
		}
		b.bufs = append(b.bufs, e.buf[:wire.TransportHeaderSize+len(pp.Buf)])
		b.gro = append(b.gro, groFlowOf(pp))
	}
	if rxPackets == 0 {
		return
	}
	p.setEndpoint(lastEndpoint)
	if confirmed {
		// The initiator used the responder's session: it is current now,
		// and whatever waited for it can go.
		p.timersHandshakeComplete()
		p.sendStaged()
		p.probeNow() // a fresh session: punch holes at once
	}
	p.rxPackets.Add(rxPackets)
	p.rxBytes.Add(rxBytes)
	d.counters.rxPackets.Add(rxPackets)
	d.counters.rxBytes.Add(rxBytes)
	p.timersAnyAuthenticatedPacketTraversal()
	p.timersAnyAuthenticatedPacketReceived()
	if dataReceived {
		p.timersDataReceived()
	}
	if lastKeypair != nil && lastKeypair.initiator &&
		now.Sub(lastKeypair.created) > d.timing.rejectAfterTime-d.timing.keepaliveTimeout-d.timing.rekeyTimeout {
		p.initiateHandshake(false) // WireGuard's keepKeyFreshReceiving
	}
	if len(b.bufs) > 0 {
		if len(b.bufs) > 1 {
			d.prepareGRO(b)
		}
		if _, err := d.tun.Write(b.bufs, wire.TransportHeaderSize); err != nil && !d.isClosed() {
			d.log.Debug("write to tun failed", "err", err)
		}
		for k, e := range b.scratch {
			d.pools.putElem(e)
			b.scratch[k] = nil
		}
		b.scratch = b.scratch[:0]
	}
}

// groFlow is a transport flow, as far as TUN GRO tells flows apart. The
// zero groFlow is no flow.
type groFlow struct {
	src, dst netip.Addr
	ports    uint32
	proto    uint8
}

// groFlowOf returns the TCP or UDP flow of the parsed packet pp; fragments
// have none.
func groFlowOf(pp *packet.Parsed) groFlow {
	if !pp.HasPorts || pp.FirstFrag || pp.LaterFrag {
		return groFlow{}
	}
	return groFlow{src: pp.Src, dst: pp.Dst, ports: uint32(pp.SrcPort)<<16 | uint32(pp.DstPort), proto: pp.Proto}
}

// groMaxFlows bounds the flows prepareGRO tracks in one write.
const groMaxFlows = 8

// prepareGRO lets the TUN coalesce b.bufs (TUN GRO appends each TCP or UDP
// segment to the first packet of its flow in the write, which needs the
// room): the first packet of every flow with two or more packets moves into
// a 64 KiB scratch element (one copy per flow), returned after the write.
// Packets are carried in small elements otherwise.
func (d *Device) prepareGRO(b *batch) {
	bufs := b.bufs
	var flows [groMaxFlows]struct {
		f     groFlow
		first int
		n     int
	}
	nf := 0
	for i, f := range b.gro {
		if f.proto == 0 {
			continue // no flow
		}
		k := 0
		for k < nf && flows[k].f != f {
			k++
		}
		if k == nf {
			if nf == groMaxFlows {
				continue
			}
			flows[k].f, flows[k].first = f, i
			nf++
		}
		flows[k].n++
	}
	for k := 0; k < nf; k++ {
		i := flows[k].first
		if flows[k].n < 2 || cap(bufs[i]) >= wire.MaxMessageSize {
			continue
		}
		e := d.pools.getLargeElem()
		b.scratch = append(b.scratch, e)
		bufs[i] = e.buf[:copy(e.buf, bufs[i])]
	}
}

// handshakeSize is the size of a handshake message of type typ (0 for any
// other type).
func handshakeSize(typ byte) int {
	switch typ {
	case wire.TypeInitiation:
		return wire.InitiationSize
	case wire.TypeResponse:
		return wire.ResponseSize
	case wire.TypeCookieReply:
		return wire.CookieReplySize
	}
	return 0
}
