package link

import (
	"sync"

	"github.com/tunnelmesh/tunnelmesh/sshgw/frame"
)

// Queued frames come from two pools by size, so a queue of small packets does
// not pin 64 KiB per entry.
const smallBuf = frame.HeaderLen + 2048

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, frame.HeaderLen+frame.MaxPacket); return &b }}
)

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
