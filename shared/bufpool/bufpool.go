// Package bufpool keeps the message buffers of per-packet paths in two
// sync.Pools by size, so that a queue of small packets does not pin a
// maximum-size buffer per entry, and a warm pool hands out buffers without
// allocating.
package bufpool

import "sync"

// Pool is a pair of buffer pools: buffers of capacity SmallLen and of
// capacity LargeLen. A Pool must not be copied; use New.
type Pool struct {
	small, large sync.Pool
	smallLen     int
	largeLen     int
}

// New returns a pool of buffers of smallLen and largeLen bytes
// (0 < smallLen < largeLen).
func New(smallLen, largeLen int) *Pool {
	if smallLen <= 0 || largeLen <= smallLen {
		panic("bufpool: want 0 < smallLen < largeLen")
	}
	p := &Pool{smallLen: smallLen, largeLen: largeLen}
	p.small.New = func() any { b := make([]byte, smallLen); return &b }
	p.large.New = func() any { b := make([]byte, largeLen); return &b }
	return p
}

// Get returns a buffer of length n: a small one when n fits, else a large
// one. n must not exceed the large size.
func (p *Pool) Get(n int) *[]byte {
	var b *[]byte
	if n <= p.smallLen {
		b = p.small.Get().(*[]byte)
	} else {
		b = p.large.Get().(*[]byte)
	}
	*b = (*b)[:n]
	return b
}

// Put returns a buffer from Get to its pool. The caller must not use it
// afterwards.
func (p *Pool) Put(b *[]byte) {
	if cap(*b) == p.smallLen {
		p.small.Put(b)
	} else {
		p.large.Put(b)
	}
}
