// Package ratelimit limits events per key (a source address, a node ID)
// with token buckets, in bounded memory.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

// maxSources bounds the table; when full, idle (refilled) sources are
// dropped, and if none is idle the oldest entries go.
const maxSources = 65536

// Limiter is a set of token buckets by key. A bucket holds up to burst
// tokens and refills at perMinute/60 per second. Safe for concurrent use.
type Limiter[K comparable] struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex // guards the fields below
	buckets map[K]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter with perMinute refill and burst capacity. A
// perMinute of 0 disables limiting.
func New[K comparable](perMinute, burst int) *Limiter[K] {
	if burst < 1 {
		burst = 1
	}
	return &Limiter[K]{rate: float64(perMinute) / 60, burst: float64(burst), buckets: make(map[K]*bucket)}
}

// ForAddrs returns a limiter keyed by source address; IPv4-mapped IPv6
// addresses count as their IPv4 address.
func ForAddrs(perMinute, burst int) *AddrLimiter {
	return &AddrLimiter{l: New[netip.Addr](perMinute, burst)}
}

// AddrLimiter is a Limiter keyed by unmapped source address.
type AddrLimiter struct{ l *Limiter[netip.Addr] }

// Allowed reports whether src has a token left, without taking one.
func (a *AddrLimiter) Allowed(src netip.Addr, now time.Time) bool {
	return a.l.Allowed(src.Unmap(), now)
}

// Take takes one of src's tokens and reports whether there was one.
func (a *AddrLimiter) Take(src netip.Addr, now time.Time) bool { return a.l.Take(src.Unmap(), now) }

// Len returns the number of tracked sources.
func (a *AddrLimiter) Len() int { return a.l.Len() }

// Allowed reports whether key has a token left, without taking one.
func (l *Limiter[K]) Allowed(key K, now time.Time) bool {
	if l.rate == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(key, now)
	return b.tokens >= 1
}

// Take takes one of key's tokens and reports whether there was one.
func (l *Limiter[K]) Take(key K, now time.Time) bool {
	if l.rate == 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(key, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *Limiter[K]) bucketLocked(key K, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxSources {
			l.pruneLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
		return b
	}
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(l.burst, b.tokens+d*l.rate)
		b.last = now
	}
	return b
}

func (l *Limiter[K]) pruneLocked(now time.Time) {
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

// Len returns the number of tracked keys.
func (l *Limiter[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
