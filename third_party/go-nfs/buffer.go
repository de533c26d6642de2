package nfs

import (
	"bytes"
	"math/bits"
	"sync"
)

// Buffers for replies and for READ and WRITE data, reused from one request
// to the next so that moving file data allocates nothing in the steady state.

// replyHeadroom is the room kept before the data of a bulk buffer: a READ
// reply's record mark, RPC header and results before the data (132 bytes)
// are copied there, so that the whole reply goes out in one write.
const replyHeadroom = 256

// bulkPad is the room kept after the data of a bulk buffer for XDR padding.
const bulkPad = 4

// Bulk buffers come in power-of-two size classes from 4 KiB to MaxRead.
const (
	minBulkShift = 12
	maxBulkShift = 24
)

// maxPooledReply is the largest small reply buffer kept for reuse.
const maxPooledReply = 1 << 20

// bulk is a buffer for the data of one READ or WRITE: replyHeadroom bytes,
// then up to 1<<shift bytes of data, then bulkPad bytes.
type bulk struct {
	buf   []byte
	shift int // size class; 0 when the buffer is too large to pool
}

var bulkPools [maxBulkShift + 1]sync.Pool

// getBulk returns a buffer for n bytes of data.
func getBulk(n int) *bulk {
	shift := minBulkShift
	if n > 1<<minBulkShift {
		shift = bits.Len(uint(n - 1))
	}
	if shift > maxBulkShift {
		return &bulk{buf: make([]byte, replyHeadroom+n+bulkPad)}
	}
	if b, ok := bulkPools[shift].Get().(*bulk); ok {
		return b
	}
	return &bulk{buf: make([]byte, replyHeadroom+1<<shift+bulkPad), shift: shift}
}

// data returns the buffer's room for n bytes of data and their padding.
func (b *bulk) data(n int) []byte {
	return b.buf[replyHeadroom : replyHeadroom+n+bulkPad]
}

func (b *bulk) release() {
	if b != nil && b.shift != 0 {
		bulkPools[b.shift].Put(b)
	}
}

var replyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// getReply returns an empty buffer for a reply.
func getReply() *bytes.Buffer {
	return replyPool.Get().(*bytes.Buffer)
}

func releaseReply(b *bytes.Buffer) {
	if b.Cap() > maxPooledReply {
		return
	}
	b.Reset()
	replyPool.Put(b)
}

// xdrPad returns the XDR padding of n bytes of opaque data.
func xdrPad(n int) int {
	return (4 - n%4) % 4
}
