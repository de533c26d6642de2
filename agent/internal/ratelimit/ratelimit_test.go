package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var l Limiter
	t0 := time.Unix(1000, 0)
	a := AddrKey(netip.MustParseAddr("192.0.2.1"))
	b := AddrKey(netip.MustParseAddr("192.0.2.2"))
	for i := 0; i < PacketsBurst; i++ {
		if !l.Allow(a, t0) {
			t.Fatalf("Allow(a) #%d = false, want true within burst", i)
		}
	}
	if l.Allow(a, t0) {
		t.Fatal("Allow(a) past burst = true, want false")
	}
	if !l.Allow(b, t0) {
		t.Fatal("Allow(b) = false, want true: other sources are not charged")
	}
	if !l.Allow(a, t0.Add(time.Second/PacketsPerSecond)) {
		t.Fatal("Allow(a) after one packet interval = false, want true")
	}
	if l.Allow(a, t0.Add(time.Second/PacketsPerSecond)) {
		t.Fatal("Allow(a) twice in one interval = true, want false")
	}
	// Sustained rate: over 10 s at 100 pps, about 20 pps pass.
	passed := 0
	for i := 0; i < 1000; i++ {
		if l.Allow(a, t0.Add(time.Second+time.Duration(i)*10*time.Millisecond)) {
			passed++
		}
	}
	if passed < 195 || passed > 210 {
		t.Fatalf("passed %d of 1000 over 10 s, want about %d", passed, 10*PacketsPerSecond)
	}
	// Idle buckets are swept.
	l.Allow(b, t0.Add(time.Minute))
	if n := l.Len(); n != 1 {
		t.Fatalf("Len after sweep = %d, want 1", n)
	}
}

func TestLimiterIPv6Prefix(t *testing.T) {
	var l Limiter
	t0 := time.Unix(1000, 0)
	for i := 0; i < PacketsBurst; i++ {
		l.Allow(AddrKey(netip.MustParseAddr("2001:db8::1")), t0)
	}
	if l.Allow(AddrKey(netip.MustParseAddr("2001:db8::2")), t0) {
		t.Fatal("Allow(same /64) = true, want false")
	}
	if !l.Allow(AddrKey(netip.MustParseAddr("2001:db8:1::1")), t0) {
		t.Fatal("Allow(other /64) = false, want true")
	}
}

func TestLimiterIdentities(t *testing.T) {
	var l Limiter
	t0 := time.Unix(1000, 0)
	relayA, relayB := IdentityKey([]byte("relay:a")), IdentityKey([]byte("relay:b"))
	for i := 0; i < PacketsBurst; i++ {
		l.Allow(relayA, t0)
	}
	if l.Allow(relayA, t0) {
		t.Fatal("Allow(relayA) past burst = true, want false")
	}
	if !l.Allow(relayB, t0) {
		t.Fatal("Allow(relayB) = false, want true: identities have their own buckets")
	}
	if !l.Allow(AddrKey(netip.Addr{}), t0) {
		t.Fatal("Allow(no address) = false, want true: not charged for identities")
	}
}
