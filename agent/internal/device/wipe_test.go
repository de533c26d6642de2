package device

import (
	"crypto/cipher"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// aeadKey returns the key bytes inside a chacha20poly1305 AEAD.
func aeadKey(t *testing.T, a cipher.AEAD) []byte {
	t.Helper()
	v := reflect.ValueOf(a)
	if v.Kind() != reflect.Pointer || v.Elem().Type().Size() != 32 {
		t.Fatalf("unexpected AEAD type %T", a)
	}
	return unsafe.Slice((*byte)(v.UnsafePointer()), 32)
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// TestRetiredKeypairZeroed: once a session is retired (two rekeys later,
// or when its peer goes) and no packet is using it, its keys are wiped.
func TestRetiredKeypairZeroed(t *testing.T) {
	m := newMesh(t, 2, fastTiming())
	a, b := m.nodes[0], m.nodes[1]
	roundTrip(t, a, b, "first session")
	p := a.dev.peerFor(b)
	first := p.keypairs.currentKeypair()
	if allZero(aeadKey(t, first.send)) || allZero(aeadKey(t, first.recv)) {
		t.Fatal("live session has zero keys")
	}
	// Two more sessions: the first becomes previous, then is retired.
	for i := range 2 {
		prev := p.keypairs.currentKeypair()
		time.Sleep(2 * m.tm.rekeyTimeout) // past the initiation rate limit
		p.initiateHandshake(false)
		waitFor(t, "a new session", 5*time.Second, func() bool { return p.keypairs.currentKeypair() != prev })
		roundTrip(t, a, b, "session "+string(rune('2'+i)))
	}
	if !first.dead.Load() {
		t.Fatal("first session not retired after two rekeys")
	}
	waitFor(t, "the retired session's keys wiped", 5*time.Second, func() bool {
		return allZero(aeadKey(t, first.send)) && allZero(aeadKey(t, first.recv))
	})
	// The peer goes: its sessions are wiped too.
	cur := p.keypairs.currentKeypair()
	cfg := m.config(0)
	cfg.Peers = nil
	if err := a.dev.Reconfig(cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed peer's session keys wiped", 5*time.Second, func() bool {
		return allZero(aeadKey(t, cur.send)) && allZero(aeadKey(t, cur.recv))
	})
}
