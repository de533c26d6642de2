package device

import (
	"runtime/debug"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// Element buffers come in two sizes. Packets travel in small ones: room for
// one MTU-sized packet plus framing (packets from the TUN, datagrams the
// receive loop copies out of its read slots, pings, probes, keepalives).
// Large ones (wire.MaxMessageSize) are the bind's read slots (UDP GRO
// coalesces into them), the scratch heads that UDP GSO runs (prepareGSO)
// and TUN GRO flows (prepareGRO) are coalesced into, and packets of an MTU
// above smallMTUMax.
const (
	smallBufSize = 2048
	// smallMTUMax is the largest MTU whose packets fit a small buffer with
	// header, padding and tag.
	smallMTUMax = smallBufSize - wire.TransportMinSize - 16
)

// Free lists keep at most this many idle elements (and batches) of each
// kind. Unlike a sync.Pool they survive garbage collections, so a busy
// device stops allocating once warm (no GC cycles, no fresh pages to fault
// in); beyond the cap, returned elements are left to the collector, and
// trim empties the lists when the device goes idle after load.
const (
	maxIdleSmall   = 2048 // 4 MiB
	maxIdleLarge   = 1024 // 64 MiB
	maxIdleBatches = 1024
)

// elem is one packet moving through the device.
type elem struct {
	buf      []byte // smallBufSize or wire.MaxMessageSize bytes
	packet   []byte // the current contents, a slice of buf
	counter  uint64
	keypair  *keypair
	endpoint conn.Endpoint
	ok       bool   // set by the decryption worker
	flow     uint16 // flow bucket of a packet from the TUN (flowBucket)
	// ref: the elem holds a reference to keypair's keys for its batch
	// (keypair.acquire), dropped once sealed or opened (releaseRefs).
	ref bool
}

// batch is a group of packets of one peer, kept in order. mu is locked from
// the moment the batch is queued until a crypto worker has processed it, so
// the peer's sequential goroutine waits on it and delivers in order while
// batches of many peers are encrypted on every core.
type batch struct {
	mu    sync.Mutex
	peer  *peer
	elems []*elem
	bufs  [][]byte // scratch for bind.Send / tun.Write
	// gro holds, for each of bufs on the receive path, its TUN GRO flow
	// (the zero groFlow: none), taken from the packet's one parse.
	gro []groFlow
	// scratch holds the large elements prepareGSO borrowed for one send.
	scratch []*elem
	// The queue discipline (queue.go): sparse batches skip the queues;
	// q is the queue whose packet count holds b's elements (nil: none),
	// enq when b entered it (mono); flows: the elements are counted in
	// peer.tx.flows; opened: received elements already decrypted (small
	// datagrams that keep their place behind the queue: receiveSparse).
	sparse bool
	flows  bool
	opened bool
	q      *pqueue
	enq    int64
}

// freeList is a bounded LIFO of idle objects (LIFO: the most recently used
// buffers are the ones still in cache).
type freeList[T any] struct {
	mu   sync.Mutex // guards free
	free []*T
	new  func() *T
}

func (f *freeList[T]) init(max int, new func() *T) {
	f.free = make([]*T, 0, max)
	f.new = new
}

func (f *freeList[T]) get() *T {
	f.mu.Lock()
	if n := len(f.free); n > 0 {
		x := f.free[n-1]
		f.free[n-1] = nil
		f.free = f.free[:n-1]
		f.mu.Unlock()
		return x
	}
	f.mu.Unlock()
	return f.new()
}

func (f *freeList[T]) put(x *T) {
	f.mu.Lock()
	if len(f.free) < cap(f.free) {
		f.free = append(f.free, x)
	}
	f.mu.Unlock()
}

// idle returns how many objects the list holds.
func (f *freeList[T]) idle() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.free)
}

// trim drops every idle object (for the collector to free).
func (f *freeList[T]) trim() {
	f.mu.Lock()
	clear(f.free)
	f.free = f.free[:0]
	f.mu.Unlock()
}

type pools struct {
	small   freeList[elem]
	large   freeList[elem]
	batches freeList[batch]
}

func (p *pools) init(batchSize int) {
	p.small.init(maxIdleSmall, func() *elem { return &elem{buf: make([]byte, smallBufSize)} })
	p.large.init(maxIdleLarge, func() *elem { return &elem{buf: make([]byte, wire.MaxMessageSize)} })
	p.batches.init(maxIdleBatches, func() *batch {
		return &batch{elems: make([]*elem, 0, batchSize), bufs: make([][]byte, 0, batchSize),
			gro: make([]groFlow, 0, batchSize), scratch: make([]*elem, 0, batchSize/2+1)}
	})
}

// getElem returns an element for one packet to send (an IP packet of at
// most smallMTUMax bytes, a ping, probe or keepalive).
func (p *pools) getElem() *elem { return p.small.get() }

// getElemMTU returns an element for a packet from the TUN under mtu.
func (p *pools) getElemMTU(mtu int) *elem {
	if mtu <= smallMTUMax {
		return p.small.get()
	}
	return p.large.get()
}

// getLargeElem returns an element for a datagram from the bind (UDP GRO may
// coalesce up to wire.MaxMessageSize bytes into it).
func (p *pools) getLargeElem() *elem { return p.large.get() }

func (p *pools) putElem(e *elem) {
	if e.ref { // dropped before it was sealed or opened
		e.keypair.release()
		e.ref = false
	}
	e.packet = nil
	e.keypair = nil
	e.endpoint = nil
	e.ok = false
	e.flow = 0
	if len(e.buf) == smallBufSize {
		p.small.put(e)
	} else {
		p.large.put(e)
	}
}

func (p *pools) getBatch(peer *peer) *batch {
	b := p.batches.get()
	b.peer = peer
	return b
}

// putBatch returns b and all its elements, which leave the queue counts.
func (p *pools) putBatch(b *batch) {
	if b.q != nil {
		b.q.packets.Add(-int32(len(b.elems)))
		b.q = nil
	}
	if b.flows {
		for _, e := range b.elems {
			b.peer.tx.flows[e.flow].Add(-1)
		}
		b.flows = false
	}
	b.sparse, b.opened = false, false
	for i, e := range b.elems {
		p.putElem(e)
		b.elems[i] = nil
	}
	for i := range b.bufs {
		b.bufs[i] = nil
	}
	clear(b.gro)
	b.elems = b.elems[:0]
	b.bufs = b.bufs[:0]
	b.gro = b.gro[:0]
	b.peer = nil
	p.batches.put(b)
}

// trim empties the free lists.
func (p *pools) trim() {
	p.small.trim()
	p.large.trim()
	p.batches.trim()
}

// After trimIdleAfterPackets packets, the first trimTick with fewer than
// trimIdlePackets (pings and keepalives only) empties the free lists and
// hands the memory back to the OS, so a node's RSS returns to its idle size
// after a burst of traffic.
const (
	trimTick             = 500 * time.Millisecond
	trimIdlePackets      = 256
	trimIdleAfterPackets = 16384
)

// routineTrimPools gives memory back after load until the device closes.
// Packets counted are transport packets in and out.
func (d *Device) routineTrimPools() {
	defer d.wgReaders.Done()
	t := time.NewTicker(trimTick)
	defer t.Stop()
	last := d.packetsMoved()
	var since uint64 // packets since the last trim
	for {
		select {
		case <-d.closing:
			return
		case <-t.C:
		}
		now := d.packetsMoved()
		moved := now - last
		last = now
		since += moved
		if moved < trimIdlePackets && since >= trimIdleAfterPackets {
			since = 0
			d.pools.trim()
			debug.FreeOSMemory()
		}
	}
}

func (d *Device) packetsMoved() uint64 {
	return d.counters.rxPackets.Load() + d.counters.txPackets.Load()
}
