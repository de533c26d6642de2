// Package ratelimit limits events per source with token buckets, in bounded
// memory.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

// maxSources bounds the table; when full, idle (refilled) sources are
// dropped, and if none is idle the oldest entries go.
const maxSources = 65536

// Limiter is a set of token buckets keyed by source address. A bucket holds
// up to Burst tokens and refills at Rate per second. Safe for concurrent use.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex // guards the fields below
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter with perMinute refill and burst capacity. A
// perMinute of 0 disables limiting.
func New(perMinute, burst int) *Limiter {
	if burst < 1 {
		burst = 1
	}
	return &Limiter{rate: float64(perMinute) / 60, burst: float64(burst), buckets: make(map[netip.Addr]*bucket)}
}

// Allowed reports whether src has a token left, without taking one.
func (l *Limiter) Allowed(src netip.Addr, now time.Time) bool {
	if l.rate == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(src, now)
	return b.tokens >= 1
}

// Take takes one token from src's bucket and reports whether there was one.
func (l *Limiter) Take(src netip.Addr, now time.Time) bool {
	if l.rate == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(src, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *Limiter) bucketLocked(src netip.Addr, now time.Time) *bucket {
	src = src.Unmap()
	b, ok := l.buckets[src]
	if !ok {
		if len(l.buckets) >= maxSources {
			l.pruneLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[src] = b
		return b
	}
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(l.burst, b.tokens+d*l.rate)
		b.last = now
	}
	return b
}

func (l *Limiter) pruneLocked(now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxSources*3/4 {
			break
		}
		delete(l.buckets, k)
	}
}

// Len returns the number of tracked sources.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
