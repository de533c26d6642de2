package handshake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tai64n"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// detRand is a deterministic entropy source for golden tests.
type detRand struct{ state [32]byte }

func (d *detRand) Read(p []byte) (int, error) {
	for i := range p {
		if i%32 == 0 {
			d.state = sha256.Sum256(d.state[:])
		}
		p[i] = d.state[i%32]
	}
	return len(p), nil
}

func key(t testing.TB, seed byte) StaticKey {
	t.Helper()
	k, err := nodekey.FromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStaticKey(k)
	if err != nil {
		t.Fatal(err)
	}
	// The public half must match the conversion of the ed25519 public key.
	pub, err := k.Public().X25519()
	if err != nil {
		t.Fatal(err)
	}
	if pub != s.Public {
		t.Fatalf("NewStaticKey public = %x, want ed25519 conversion %x", s.Public, pub)
	}
	return s
}

func params(t testing.TB, seed byte, psk byte, mesh string, rnd io.Reader) *Params {
	p := &Params{Local: key(t, seed), Prologue: wire.Prologue(mesh), Random: rnd}
	for i := range p.PSK {
		p.PSK[i] = psk
	}
	return p
}

func run(t *testing.T, ip, rp *Params) (Keys, Keys, *Responder, error) {
	t.Helper()
	now := time.Unix(1700000000, 123456789)
	ini, m1, err := Initiate(ip, rp.Local.Public, 42, now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Consume(rp, &m1, time.Now(), nil)
	if err != nil {
		return Keys{}, Keys{}, nil, err
	}
	m2, rk, err := r.Respond(77)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Receiver != 42 || m2.Sender != 77 {
		t.Fatalf("response indices = %d/%d, want 77/42", m2.Sender, m2.Receiver)
	}
	ik, err := ini.Finish(&m2)
	return ik, rk, r, err
}

func TestHandshake(t *testing.T) {
	ip, rp := params(t, 1, 9, "mesh-a", nil), params(t, 2, 9, "mesh-a", nil)
	ik, rk, r, err := run(t, ip, rp)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if ik.Send != rk.Recv || ik.Recv != rk.Send {
		t.Fatal("session keys do not match")
	}
	if ik.Send == ik.Recv {
		t.Fatal("send and receive keys are equal")
	}
	if r.PeerStatic != ip.Local.Public {
		t.Fatalf("PeerStatic = %x, want %x", r.PeerStatic, ip.Local.Public)
	}
	if r.Timestamp != NewTimestamp(time.Unix(1700000000, 123456789)) {
		t.Fatal("timestamp not carried")
	}
}

func TestHandshakeFailures(t *testing.T) {
	tests := []struct {
		name        string
		ip, rp      *Params
		failConsume bool
	}{
		{"wrong psk", params(t, 1, 9, "m", nil), params(t, 2, 8, "m", nil), true},
		{"wrong mesh", params(t, 1, 9, "m", nil), params(t, 2, 9, "other", nil), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := run(t, tt.ip, tt.rp)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("handshake error = %v, want ErrDecrypt", err)
			}
		})
	}
	t.Run("wrong responder key", func(t *testing.T) {
		ip, rp := params(t, 1, 9, "m", nil), params(t, 2, 9, "m", nil)
		_, m1, err := Initiate(ip, key(t, 3).Public, 1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Consume(rp, &m1, time.Now(), nil); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Consume = %v, want ErrDecrypt", err)
		}
	})
	t.Run("tampered response then good one", func(t *testing.T) {
		ip, rp := params(t, 1, 9, "m", nil), params(t, 2, 9, "m", nil)
		ini, m1, _ := Initiate(ip, rp.Local.Public, 5, time.Now())
		r, err := Consume(rp, &m1, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		m2, _, _ := r.Respond(6)
		bad := m2
		bad.Noise[40] ^= 1
		if _, err := ini.Finish(&bad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("Finish(tampered) = %v, want ErrDecrypt", err)
		}
		if _, err := ini.Finish(&m2); err != nil {
			t.Fatalf("Finish(good after tampered) = %v", err)
		}
		if _, err := ini.Finish(&m2); !errors.Is(err, ErrState) {
			t.Fatalf("second Finish = %v, want ErrState", err)
		}
		if _, _, err := r.Respond(7); !errors.Is(err, ErrState) {
			t.Fatalf("second Respond = %v, want ErrState", err)
		}
	})
}

// TestGolden pins the handshake bytes for fixed keys and entropy, so any
// change to the construction (prologue, PSK placement, payload) is noticed.
func TestGolden(t *testing.T) {
	ip := params(t, 1, 9, "golden", &detRand{})
	rp := params(t, 2, 9, "golden", &detRand{state: [32]byte{1}})
	now := time.Unix(1700000000, 0)
	ini, m1, err := Initiate(ip, rp.Local.Public, 0x01020304, now)
	if err != nil {
		t.Fatal(err)
	}
	b1 := m1.MarshalTo(make([]byte, wire.InitiationSize))
	r, err := Consume(rp, &m1, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, rk, err := r.Respond(0x05060708)
	if err != nil {
		t.Fatal(err)
	}
	b2 := m2.MarshalTo(make([]byte, wire.ResponseSize))
	ik, err := ini.Finish(&m2)
	if err != nil {
		t.Fatal(err)
	}
	if ik.Send != rk.Recv {
		t.Fatal("keys differ")
	}
	check := func(name string, got []byte, want string) {
		t.Helper()
		if h := hex.EncodeToString(got); h != want {
			t.Errorf("%s = %s\nwant %s", name, h, want)
		}
	}
	check("initiation", b1, goldenInitiation)
	check("response", b2, goldenResponse)
	check("initiator send key", ik.Send[:], goldenSendKey)
}

func TestTimestampOrder(t *testing.T) {
	a := NewTimestamp(time.Unix(100, 0))
	b := NewTimestamp(time.Unix(100, 500_000_000))
	c := NewTimestamp(time.Unix(101, 0))
	if !b.After(a) || !c.After(b) || a.After(a) || a.After(c) {
		t.Fatal("timestamps out of order")
	}
	if NewTimestamp(time.Unix(100, 1)) != a {
		t.Fatal("timestamp not coarsened")
	}
}

// TestTimestampIsTAI64N checks that NewTimestamp encodes as wireguard-go's
// tai64n does: its String decodes ours to the coarsened time, and a stamp
// tai64n.Now takes later is not older.
func TestTimestampIsTAI64N(t *testing.T) {
	now := time.Now()
	ts := NewTimestamp(now)
	later := tai64n.Now()
	if ts.After(later) {
		t.Fatalf("NewTimestamp(now) = %x after tai64n.Now() = %x taken later", ts, later)
	}
	want := time.Unix(now.Unix(), int64(now.Nanosecond()&^(1<<24-1)))
	if got := ts.String(); got != want.String() {
		t.Fatalf("tai64n decodes NewTimestamp(%v) as %s, want %s", now, got, want)
	}
}

func FuzzConsume(f *testing.F) {
	ip, rp := params(f, 1, 9, "m", nil), params(f, 2, 9, "m", nil)
	_, m1, _ := Initiate(ip, rp.Local.Public, 1, time.Now())
	f.Add(m1.MarshalTo(make([]byte, wire.InitiationSize)))
	f.Add(make([]byte, wire.InitiationSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.ParseInitiation(b)
		if err != nil {
			return
		}
		r, err := Consume(rp, &m, time.Now(), nil)
		if err == nil && r.PeerStatic != ip.Local.Public {
			t.Fatalf("forged initiation accepted for key %x", r.PeerStatic)
		}
	})
}

func FuzzFinish(f *testing.F) {
	ip, rp := params(f, 1, 9, "m", nil), params(f, 2, 9, "m", nil)
	f.Add((&wire.Response{Receiver: 1}).MarshalTo(make([]byte, wire.ResponseSize)))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.ParseResponse(b)
		if err != nil {
			return
		}
		ini, _, err := Initiate(ip, rp.Local.Public, 1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ini.Finish(&m); err == nil {
			t.Fatal("forged response accepted")
		}
	})
}
