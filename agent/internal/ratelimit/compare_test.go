package ratelimit

import (
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/ratelimiter"
)

// BenchmarkCompare runs this limiter and wireguard-go's ratelimiter side by
// side (the package doc quotes the numbers):
//
//	go test ./agent/internal/ratelimit -run XXX -bench Compare -benchmem
//
// "flood": one source over its limit, the case the limiter exists for.
// "sources": 4,096 sources in turn (at this rate each is over its limit
// too).
// "ipv6-rotation": one attacker walking the addresses of its /64; the
// allowed/op metric is the fraction of its initiations let through.
func BenchmarkCompare(b *testing.B) {
	v4 := netip.MustParseAddr("192.0.2.1")
	sources := make([]netip.Addr, 4096)
	for i := range sources {
		sources[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	rotating := func(i int) netip.Addr {
		a := netip.MustParseAddr("2001:db8::").As16()
		a[14], a[15] = byte(i>>8), byte(i)
		return netip.AddrFrom16(a)
	}
	own := func(b *testing.B, addr func(i int) netip.Addr) {
		var l Limiter
		allowed := 0
		i := 0
		for b.Loop() {
			if l.Allow(AddrKey(addr(i)), time.Now()) {
				allowed++
			}
			i++
		}
		b.ReportMetric(float64(allowed)/float64(i), "allowed/op")
	}
	wg := func(b *testing.B, addr func(i int) netip.Addr) {
		var l ratelimiter.Ratelimiter
		l.Init()
		defer l.Close()
		allowed := 0
		i := 0
		for b.Loop() {
			if l.Allow(addr(i)) {
				allowed++
			}
			i++
		}
		b.ReportMetric(float64(allowed)/float64(i), "allowed/op")
	}
	cases := []struct {
		name string
		addr func(i int) netip.Addr
	}{
		{"flood", func(int) netip.Addr { return v4 }},
		{"sources", func(i int) netip.Addr { return sources[i%len(sources)] }},
		{"ipv6-rotation", rotating},
	}
	for _, c := range cases {
		b.Run(c.name+"/own", func(b *testing.B) { b.ReportAllocs(); own(b, c.addr) })
		b.Run(c.name+"/wireguard-go", func(b *testing.B) { b.ReportAllocs(); wg(b, c.addr) })
	}
}
