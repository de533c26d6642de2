package device

import (
	"sync"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// elem is one packet moving through the device, in a buffer big enough for
// any message (TUN offloads coalesce segments into it).
type elem struct {
	buf      *[wire.MaxMessageSize]byte
	packet   []byte // the current contents, a slice of buf
	counter  uint64
	keypair  *keypair
	endpoint conn.Endpoint
	ok       bool // set by the decryption worker
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
}

type pools struct {
	elems   sync.Pool
	batches sync.Pool
}

func (p *pools) init(batchSize int) {
	p.elems.New = func() any { return &elem{buf: new([wire.MaxMessageSize]byte)} }
	p.batches.New = func() any {
		return &batch{elems: make([]*elem, 0, batchSize), bufs: make([][]byte, 0, batchSize)}
	}
}

func (p *pools) getElem() *elem { return p.elems.Get().(*elem) }

func (p *pools) putElem(e *elem) {
	e.packet = nil
	e.keypair = nil
	e.endpoint = nil
	e.ok = false
	p.elems.Put(e)
}

func (p *pools) getBatch(peer *peer) *batch {
	b := p.batches.Get().(*batch)
	b.peer = peer
	return b
}

// putBatch returns b and all its elements.
func (p *pools) putBatch(b *batch) {
	for i, e := range b.elems {
		p.putElem(e)
		b.elems[i] = nil
	}
	for i := range b.bufs {
		b.bufs[i] = nil
	}
	b.elems = b.elems[:0]
	b.bufs = b.bufs[:0]
	b.peer = nil
	p.batches.Put(b)
}
