// Package ratelimit limits handshake initiations per source IP address with
// a token bucket per address, as WireGuard does under load: PacketsPerSecond
// sustained, PacketsBurst at once. Idle buckets are swept lazily, so the
// limiter owns no goroutine.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

const (
	PacketsPerSecond = 20
	PacketsBurst     = 5
	packetCost       = int64(time.Second) / PacketsPerSecond
	maxTokens        = packetCost * PacketsBurst
	sweepInterval    = time.Second
)

type bucket struct {
	last   time.Time
	tokens int64
}

// Limiter is safe for concurrent use. The zero value is ready to use.
type Limiter struct {
	mu        sync.Mutex // guards the fields below
	buckets   map[netip.Addr]*bucket
	lastSweep time.Time
}

// Allow reports whether a packet from ip at time now is within the limit, and
// charges it if so. IPv6 sources are limited per /64.
func (l *Limiter) Allow(ip netip.Addr, now time.Time) bool {
	ip = key(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = make(map[netip.Addr]*bucket)
	}
	if now.Sub(l.lastSweep) >= sweepInterval {
		l.sweepLocked(now)
	}
	b := l.buckets[ip]
	if b == nil {
		l.buckets[ip] = &bucket{last: now, tokens: maxTokens - packetCost}
		return true
	}
	b.tokens += int64(now.Sub(b.last))
	b.last = now
	if b.tokens > maxTokens {
		b.tokens = maxTokens
	}
	if b.tokens < packetCost {
		return false
	}
	b.tokens -= packetCost
	return true
}

// Len returns the number of tracked addresses (for tests and metrics).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func (l *Limiter) sweepLocked(now time.Time) {
	for ip, b := range l.buckets {
		if now.Sub(b.last) > sweepInterval {
			delete(l.buckets, ip)
		}
	}
	l.lastSweep = now
}

func key(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}
