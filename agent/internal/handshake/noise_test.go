package handshake

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/flynn/noise"
)

// TestMatchesFlynnNoise checks the hand-written Noise against
// github.com/flynn/noise running IKpsk2 with the same keys, entropy and
// prologue (ours followed by the PSK tag): the messages and keys must be
// the same bytes.
func TestMatchesFlynnNoise(t *testing.T) {
	ip := params(t, 1, 9, "cross", &detRand{})
	rp := params(t, 2, 9, "cross", &detRand{state: [32]byte{1}})
	now := time.Unix(1700000000, 0)
	ini, m1, err := Initiate(ip, rp.Local.Public, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Consume(rp, &m1, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, rk, err := r.Respond(2)
	if err != nil {
		t.Fatal(err)
	}
	ik, err := ini.Finish(&m2)
	if err != nil {
		t.Fatal(err)
	}

	tag := pskTag(&ip.PSK)
	cfg := func(p *Params, initiator bool, rnd *detRand) noise.Config {
		c := noise.Config{
			CipherSuite:           noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s),
			Random:                rnd,
			Pattern:               noise.HandshakeIK,
			Initiator:             initiator,
			Prologue:              append(append([]byte(nil), p.Prologue...), tag[:]...),
			PresharedKey:          p.PSK[:],
			PresharedKeyPlacement: 2,
			StaticKeypair:         noise.DHKey{Private: p.Local.Private[:], Public: p.Local.Public[:]},
		}
		if initiator {
			c.PeerStatic = rp.Local.Public[:]
		}
		return c
	}
	fi, err := noise.NewHandshakeState(cfg(ip, true, &detRand{}))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := noise.NewHandshakeState(cfg(rp, false, &detRand{state: [32]byte{1}}))
	if err != nil {
		t.Fatal(err)
	}
	ts := NewTimestamp(now)
	f1, _, _, err := fi.WriteMessage(nil, ts[:])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f1, m1.Noise[:]) {
		t.Fatalf("initiation = %x, flynn/noise %x", m1.Noise, f1)
	}
	if _, _, _, err := fr.ReadMessage(nil, f1); err != nil {
		t.Fatal(err)
	}
	f2, c1, c2, err := fr.WriteMessage(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f2, m2.Noise[:]) {
		t.Fatalf("response = %x, flynn/noise %x", m2.Noise, f2)
	}
	if c1.UnsafeKey() != ik.Send || c2.UnsafeKey() != ik.Recv || rk.Send != ik.Recv || rk.Recv != ik.Send {
		t.Fatal("transport keys differ from flynn/noise's")
	}
}

// countDH counts the Diffie-Hellman operations with peer keys until the
// test ends.
func countDH(t *testing.T) *int {
	n := new(int)
	orig := dh
	dh = func(priv, pub *[32]byte) ([32]byte, error) {
		*n++
		return orig(priv, pub)
	}
	t.Cleanup(func() { dh = orig })
	return n
}

// TestUnknownKeyRefusedBeforeSecondDH: the responder asks about the
// initiator's static key as soon as it is decrypted, so a key that is not a
// peer costs one Diffie-Hellman (es), not two.
func TestUnknownKeyRefusedBeforeSecondDH(t *testing.T) {
	ip, rp := params(t, 1, 9, "m", nil), params(t, 2, 9, "m", nil)
	_, m1, err := Initiate(ip, rp.Local.Public, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n := countDH(t)
	asked := false
	_, err = Consume(rp, &m1, time.Now(), func(k [32]byte) bool {
		asked = true
		if k != ip.Local.Public {
			t.Errorf("asked about %x, want the initiator's key %x", k, ip.Local.Public)
		}
		if *n != 1 {
			t.Errorf("asked after %d Diffie-Hellman operations, want 1", *n)
		}
		return false
	})
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Consume = %v, want ErrUnknownKey", err)
	}
	if !asked || *n != 1 {
		t.Fatalf("unknown key cost %d Diffie-Hellman operations (asked %v), want 1", *n, asked)
	}
	*n = 0
	if _, err := Consume(rp, &m1, time.Now(), func([32]byte) bool { return true }); err != nil {
		t.Fatalf("Consume(known key) = %v", err)
	}
	if *n != 2 {
		t.Fatalf("known key cost %d Diffie-Hellman operations, want 2", *n)
	}
}

// TestPreviousPSK: during a rotation's overlap the responder accepts
// initiations for the previous PSK as well, answers with it, and the
// initiator completes; after the overlap it refuses them. Trying the
// previous PSK costs no extra Diffie-Hellman.
func TestPreviousPSK(t *testing.T) {
	old := params(t, 1, 8, "m", nil) // a node that holds only the old PSK
	rp := params(t, 2, 9, "m", nil)
	rp.PrevPSK = old.PSK
	now := time.Unix(1700000000, 0)
	rp.PrevUntil = now.Add(time.Minute)

	ini, m1, err := Initiate(old, rp.Local.Public, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	n := countDH(t)
	r, err := Consume(rp, &m1, now, nil)
	if err != nil {
		t.Fatalf("Consume(old PSK, during overlap) = %v", err)
	}
	if !r.PreviousPSK {
		t.Error("PreviousPSK not reported")
	}
	if *n != 2 {
		t.Errorf("consuming with the previous PSK cost %d Diffie-Hellman operations, want 2", *n)
	}
	m2, rk, err := r.Respond(2)
	if err != nil {
		t.Fatal(err)
	}
	ik, err := ini.Finish(&m2)
	if err != nil {
		t.Fatalf("initiator with the old PSK: Finish = %v", err)
	}
	if ik.Send != rk.Recv {
		t.Fatal("keys differ")
	}

	// The current PSK still works, and is not reported as previous.
	cur := params(t, 3, 9, "m", nil)
	_, m1c, _ := Initiate(cur, rp.Local.Public, 1, now)
	if r, err := Consume(rp, &m1c, now, nil); err != nil || r.PreviousPSK {
		t.Fatalf("Consume(current PSK) = %v, previous %v", err, r != nil && r.PreviousPSK)
	}

	// After the overlap: refused.
	if _, err := Consume(rp, &m1, rp.PrevUntil, nil); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Consume(old PSK, after overlap) = %v, want ErrDecrypt", err)
	}
	// A PSK that is neither: refused.
	other := params(t, 1, 7, "m", nil)
	_, m1o, _ := Initiate(other, rp.Local.Public, 1, now)
	if _, err := Consume(rp, &m1o, now, nil); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Consume(unrelated PSK) = %v, want ErrDecrypt", err)
	}
}

// TestSecretsWiped: a finished or abandoned handshake keeps no ephemeral
// key, chaining key, hash or PSK (as wireguard-go clears its handshake).
func TestSecretsWiped(t *testing.T) {
	ip, rp := params(t, 1, 9, "m", nil), params(t, 2, 9, "m", nil)
	now := time.Now()
	wiped := func(what string, bufs ...[]byte) {
		t.Helper()
		for _, b := range bufs {
			for _, x := range b {
				if x != 0 {
					t.Fatalf("%s: secret not wiped: %x", what, b)
				}
			}
		}
	}
	ini, m1, err := Initiate(ip, rp.Local.Public, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Consume(rp, &m1, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, _, err := r.Respond(2)
	if err != nil {
		t.Fatal(err)
	}
	wiped("responder after Respond", r.sym.ck[:], r.sym.h[:], r.psk[:])
	if _, err := ini.Finish(&m2); err != nil {
		t.Fatal(err)
	}
	wiped("initiator after Finish", ini.e[:], ini.local[:], ini.psk[:], ini.sym.ck[:], ini.sym.h[:])

	abandoned, _, err := Initiate(ip, rp.Local.Public, 3, now)
	if err != nil {
		t.Fatal(err)
	}
	abandoned.Zero()
	wiped("abandoned initiator", abandoned.e[:], abandoned.local[:], abandoned.psk[:], abandoned.sym.ck[:], abandoned.sym.h[:])
	if _, err := abandoned.Finish(&m2); !errors.Is(err, ErrState) {
		t.Fatalf("Finish after Zero = %v, want ErrState", err)
	}
}
