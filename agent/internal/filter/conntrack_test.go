package filter

import (
	"runtime"
	"testing"
)

// TestConntrackEmptyIsSmall checks that an empty flow table of the default
// size holds next to no memory: every node keeps one, idle or not, and the
// shards' maps grow only with the flows tracked.
func TestConntrackEmptyIsSmall(t *testing.T) {
	const limit = 64 << 10
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ct := newConntrack(DefaultMaxFlows, 0)
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ct)
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Fatalf("newConntrack(%d, 0) allocated %d bytes, want at most %d", DefaultMaxFlows, got, limit)
	}

	// It still tracks: a shard's map grows as flows arrive.
	for port := range uint16(5000) {
		k := flowKey{peer: 0x64400002, addr: 0x64400001, local: port, remote: 80, proto: 6}
		ct.upsert(k, 0, 1e9, false, true)
		if !ct.exists(k, 0) {
			t.Fatalf("flow to port %d not tracked after upsert, with %d flows", port, ct.len())
		}
	}
	if got := ct.len(); got != 5000 {
		t.Fatalf("len() = %d, want 5000", got)
	}
}
