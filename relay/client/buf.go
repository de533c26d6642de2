package client

import (
	"errors"
	"io"
	"sync"

	"github.com/tunnelmesh/tunnelmesh/shared/relaywire"
)

const smallBuf = relaywire.PacketHeaderLen + 2048

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, relaywire.MaxMessageLen); return &b }}
)

// getBuf returns a buffer of length n from the pool of its size.
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

// readMessage reads one whole WebSocket message into buf.
func readMessage(r io.Reader, buf []byte) (int, error) {
	n := 0
	for {
		if n == len(buf) {
			var one [1]byte
			if k, _ := r.Read(one[:]); k > 0 {
				return n, errors.New("relay message exceeds the read limit")
			}
			return n, nil
		}
		k, err := r.Read(buf[n:])
		n += k
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
