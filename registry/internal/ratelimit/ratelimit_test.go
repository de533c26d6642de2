package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := ForAddrs(60, 3) // one token per second, burst 3
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !l.Allowed(a, t0) || !l.Take(a, t0) {
			t.Fatalf("take %d within burst refused", i)
		}
	}
	if l.Allowed(a, t0) || l.Take(a, t0) {
		t.Fatal("take beyond burst allowed")
	}
	if !l.Allowed(b, t0) {
		t.Fatal("another source limited by a's failures")
	}
	if l.Allowed(a, t0.Add(500*time.Millisecond)) {
		t.Fatal("refilled a whole token in half a second")
	}
	if !l.Take(a, t0.Add(1100*time.Millisecond)) {
		t.Fatal("no token after a second")
	}
	// IPv4-mapped IPv6 is the same source.
	if l.Take(netip.MustParseAddr("::ffff:192.0.2.1"), t0.Add(1100*time.Millisecond)) {
		t.Fatal("mapped address has its own bucket")
	}
	if !l.Allowed(a, t0.Add(time.Hour)) {
		t.Fatal("bucket never refills")
	}
}

func TestDisabled(t *testing.T) {
	l := ForAddrs(0, 1)
	a := netip.MustParseAddr("192.0.2.1")
	for range 100 {
		if !l.Take(a, time.Now()) {
			t.Fatal("disabled limiter refused")
		}
	}
	if l.Len() != 0 {
		t.Fatalf("disabled limiter tracks %d sources", l.Len())
	}
}

func TestBoundedMemory(t *testing.T) {
	l := New[netip.Addr](60, 1)
	t0 := time.Unix(1000, 0)
	for i := range maxSources + 1000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Take(a, t0)
	}
	if n := l.Len(); n > maxSources {
		t.Fatalf("limiter tracks %d sources, bound %d", n, maxSources)
	}
}

func TestStringKeys(t *testing.T) {
	l := New[string](60, 1)
	t0 := time.Unix(1000, 0)
	if !l.Take("node-a", t0) || l.Take("node-a", t0) || !l.Take("node-b", t0) {
		t.Fatal("per-key buckets not independent")
	}
}
