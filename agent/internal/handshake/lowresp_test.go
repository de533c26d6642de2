package handshake

import (
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// TestForgedLowOrderResponseThenGenuine: a response whose ephemeral is a
// low-order point makes the ee Diffie-Hellman fail. It must leave the
// Initiator as it was, so the genuine response that follows still completes
// the handshake.
func TestForgedLowOrderResponseThenGenuine(t *testing.T) {
	ip, rp := params(t, 1, 9, "m", nil), params(t, 2, 9, "m", nil)
	ini, m1, err := Initiate(ip, rp.Local.Public, 42, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := Consume(rp, &m1, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, rk, err := r.Respond(77)
	if err != nil {
		t.Fatal(err)
	}
	for _, low := range [][32]byte{{}, {1}} { // the zero point and the point of order 1
		forged := wire.Response{Sender: 66, Receiver: 42}
		copy(forged.Noise[:32], low[:])
		if _, err := ini.Finish(&forged); err == nil {
			t.Fatalf("forged response with ephemeral %x accepted", low)
		}
	}
	ik, err := ini.Finish(&m2)
	if err != nil {
		t.Fatalf("genuine response after a forged one: %v", err)
	}
	if ik.Send != rk.Recv || ik.Recv != rk.Send {
		t.Fatal("keys differ")
	}
}
