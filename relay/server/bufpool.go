package server

import (
	"sync"

	"github.com/tunnelmesh/tunnelmesh/shared/relaywire"
)

// Queued frames come from two pools by size, so a queue of small datagrams
// does not pin 64 KiB per entry.
const smallBuf = relaywire.PacketHeaderLen + 2048

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, relaywire.MaxMessageLen); return &b }}
)

// getBuf returns a buffer of length n.
func getBuf(n int) *[]byte {
	var b *[]byte
	if n <= smallBuf {
		b = smallPool.Get().(*[]byte)
	} else {
		b = largePool.Get().(*[]byte)
	}
	*b = (*b)[:n]
	return b
}

func putBuf(b *[]byte) {
	if cap(*b) == smallBuf {
		smallPool.Put(b)
	} else {
		largePool.Put(b)
	}
}
