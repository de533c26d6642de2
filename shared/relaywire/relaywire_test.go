package relaywire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

var update = flag.Bool("update", false, "rewrite golden files")

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testKey(t testing.TB, seedByte byte) nodekey.PrivateKey {
	t.Helper()
	k, err := nodekey.FromSeed(bytes.Repeat([]byte{seedByte}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	text := []byte(hex.EncodeToString(got) + "\n")
	if *update {
		if err := os.WriteFile(path, text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(text, want) {
		t.Errorf("%s = %s, want %s", name, text, want)
	}
}

func TestChallengeGolden(t *testing.T) {
	var c Challenge
	for i := range c.Nonce {
		c.Nonce[i] = byte(i)
	}
	c.Time = time.UnixMilli(0x0102030405)
	c.RelayID = "r1"
	got, err := c.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := mustHex(t, `01 01
		000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
		0000000102030405
		02 7231`)
	if !bytes.Equal(got, want) {
		t.Fatalf("Challenge.Append = %x, want %x", got, want)
	}
	back, err := ParseChallenge(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.Nonce != c.Nonce || !back.Time.Equal(c.Time) || back.RelayID != c.RelayID {
		t.Errorf("ParseChallenge(%x) = %+v, want %+v", got, back, c)
	}
}

func TestAuthGolden(t *testing.T) {
	k := testKey(t, 7)
	chal := mustHex(t, `01 01 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
		0000000102030405 02 7231`)
	a := SignAuth(k, chal)
	msg := a.Append(nil)
	if len(msg) != AuthLen {
		t.Fatalf("len(auth) = %d, want %d", len(msg), AuthLen)
	}
	if msg[0] != TypeAuth || msg[1] != Version || !bytes.Equal(msg[2:34], pubBytes(k)) {
		t.Fatalf("auth header = %x, want 0201 || key", msg[:34])
	}
	golden(t, "auth", msg)
	back, err := ParseAuth(msg)
	if err != nil {
		t.Fatal(err)
	}
	if back != a {
		t.Errorf("ParseAuth round trip = %+v, want %+v", back, a)
	}
	if !back.Verify(chal) {
		t.Error("Verify(original challenge) = false, want true")
	}
	// The signature is over context || challenge || key, verifiable by plain ed25519.
	signed := append(append([]byte("tunnelmesh-relay-auth-v1\x00"), chal...), pubBytes(k)...)
	if !k.Public().Verify(signed, back.Sig[:]) {
		t.Error("signature does not verify over the documented message")
	}
}

func TestAuthBindsChallenge(t *testing.T) {
	k := testKey(t, 9)
	c := Challenge{Time: time.UnixMilli(1000), RelayID: "relay-a"}
	chal, _ := c.Append(nil)
	a := SignAuth(k, chal)
	tests := []struct {
		name   string
		mutate func(Challenge) Challenge
	}{
		{"other nonce", func(c Challenge) Challenge { c.Nonce[0] ^= 1; return c }},
		{"other time", func(c Challenge) Challenge { c.Time = c.Time.Add(time.Millisecond); return c }},
		{"other relay", func(c Challenge) Challenge { c.RelayID = "relay-b"; return c }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other, _ := tt.mutate(c).Append(nil)
			if a.Verify(other) {
				t.Errorf("Verify(%x) = true for a different challenge", other)
			}
		})
	}
	// Another key claiming the signature fails.
	b := a
	b.Key = testKey(t, 10).Public()
	if b.Verify(chal) {
		t.Error("Verify with a substituted key = true")
	}
}

func TestPacketGolden(t *testing.T) {
	k := testKey(t, 1).Public()
	msg := AppendPacket(nil, k, []byte{0xde, 0xad})
	want := append(append([]byte{0x10}, k[:]...), 0xde, 0xad)
	if !bytes.Equal(msg, want) {
		t.Fatalf("AppendPacket = %x, want %x", msg, want)
	}
	gotKey, payload, err := ParsePacket(msg)
	if err != nil || gotKey != k || !bytes.Equal(payload, []byte{0xde, 0xad}) {
		t.Fatalf("ParsePacket = %x %x %v", gotKey, payload, err)
	}
	src := testKey(t, 2).Public()
	SetPacketKey(msg, src)
	gotKey, payload, _ = ParsePacket(msg)
	if gotKey != src || !bytes.Equal(payload, []byte{0xde, 0xad}) {
		t.Errorf("after SetPacketKey: key %x payload %x, want %x dead", gotKey, payload, src)
	}
	if got := AppendReady(nil); !bytes.Equal(got, []byte{0x03}) {
		t.Errorf("AppendReady = %x, want 03", got)
	}
}

func TestBatchGolden(t *testing.T) {
	k1, k2 := testKey(t, 1).Public(), testKey(t, 2).Public()
	msg := append([]byte{}, TypeBatch)
	msg = AppendBatchRecord(msg, k1, []byte{0xaa})
	msg = AppendBatchRecord(msg, k2, bytes.Repeat([]byte{0xbb}, 258))
	want := []byte{0x11}
	want = append(append(want, k1[:]...), 0x00, 0x01, 0xaa)
	want = append(append(want, k2[:]...), 0x01, 0x02)
	want = append(want, bytes.Repeat([]byte{0xbb}, 258)...)
	if !bytes.Equal(msg, want) {
		t.Fatalf("batch = %x, want %x", msg, want)
	}
	r, err := ParseBatch(msg)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []struct {
		key nodekey.PublicKey
		p   []byte
	}{{k1, []byte{0xaa}}, {k2, bytes.Repeat([]byte{0xbb}, 258)}} {
		key, p, ok, err := r.Next()
		if !ok || err != nil || key != w.key || !bytes.Equal(p, w.p) {
			t.Fatalf("record %d = %x %x %v %v", i, key, p, ok, err)
		}
	}
	if _, _, ok, err := r.Next(); ok || err != nil {
		t.Errorf("after last record: ok %v err %v, want false nil", ok, err)
	}
}

func TestBatchErrors(t *testing.T) {
	k := testKey(t, 1).Public()
	good := AppendBatchRecord([]byte{TypeBatch}, k, []byte("x"))
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"header only", []byte{TypeBatch}, ErrShort},
		{"wrong type", append([]byte{TypePacket}, good[1:]...), ErrType},
		{"truncated second record", append(append([]byte{}, good...), k[:10]...), ErrShort},
		{"zero length record", AppendBatchRecord(append([]byte{}, good...), k, nil), ErrEmptyPacket},
		{"length past the end", append(append(append([]byte{}, good...), k[:]...), 0x00, 0x05, 'a'), ErrShort},
		{"too long", AppendBatchRecord(AppendBatchRecord([]byte{TypeBatch}, k, make([]byte, 40000)), k, make([]byte, 40000)), ErrLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseBatch(tt.in)
			for err == nil {
				var ok bool
				if _, _, ok, err = r.Next(); !ok && err == nil {
					break
				}
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("parse(%.40x) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	k := testKey(t, 1).Public()
	good, _ := Challenge{Time: time.UnixMilli(1), RelayID: "x"}.Append(nil)
	tests := []struct {
		name  string
		parse func([]byte) error
		in    []byte
		want  error
	}{
		{"challenge empty", pc, nil, ErrShort},
		{"challenge wrong type", pc, append([]byte{0x02}, good[1:]...), ErrType},
		{"challenge wrong version", pc, append([]byte{0x01, 0x02}, good[2:]...), ErrVersion},
		{"challenge truncated id", pc, append(append([]byte{}, good[:42]...), 5, 'a'), ErrShort},
		{"challenge trailing byte", pc, append(append([]byte{}, good...), 'z'), ErrLong},
		{"challenge zero-length id", pc, append(append([]byte{}, good[:42]...), 0, 'a'), ErrLong},
		{"challenge bad utf8", pc, append(append([]byte{}, good[:42]...), 1, 0xff), ErrRelayID},
		{"auth short", pa, make([]byte, AuthLen-1), ErrShort},
		{"auth long", pa, make([]byte, AuthLen+1), ErrLong},
		{"auth type", pa, make([]byte, AuthLen), ErrType},
		{"auth version", pa, append([]byte{TypeAuth, 9}, make([]byte, AuthLen-2)...), ErrVersion},
		{"ready empty", ParseReady, nil, ErrShort},
		{"ready long", ParseReady, []byte{TypeReady, 0}, ErrLong},
		{"ready type", ParseReady, []byte{TypePacket}, ErrType},
		{"packet empty", pp, nil, ErrShort},
		{"packet type", pp, []byte{TypeAuth, 1, 2}, ErrType},
		{"packet no payload", pp, AppendPacket(nil, k, nil), ErrEmptyPacket},
		{"packet short key", pp, []byte{TypePacket, 1, 2, 3}, ErrShort},
		{"packet too long", pp, AppendPacket(nil, k, make([]byte, MaxPayload+1)), ErrLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.parse(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("parse(%.40x) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func pc(b []byte) error { _, err := ParseChallenge(b); return err }
func pa(b []byte) error { _, err := ParseAuth(b); return err }
func pp(b []byte) error { _, _, err := ParsePacket(b); return err }

func TestChallengeRejectsBadRelayID(t *testing.T) {
	for _, id := range []string{"", strings.Repeat("a", 256), "\xff"} {
		if _, err := (Challenge{Time: time.UnixMilli(1), RelayID: id}).Append(nil); !errors.Is(err, ErrRelayID) {
			t.Errorf("Append with relay id %q: err = %v, want ErrRelayID", id, err)
		}
	}
}

func TestParsePacketNoAlloc(t *testing.T) {
	msg := AppendPacket(nil, testKey(t, 1).Public(), make([]byte, 1400))
	src := testKey(t, 2).Public()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, err := ParsePacket(msg); err != nil {
			t.Fatal(err)
		}
		SetPacketKey(msg, src)
	})
	if allocs != 0 {
		t.Errorf("ParsePacket+SetPacketKey allocs = %v, want 0", allocs)
	}
}

// FuzzParse feeds arbitrary relay messages to every parser: none may panic,
// and whatever parses must encode back to the same bytes.
func FuzzParse(f *testing.F) {
	k := testKey(f, 3)
	chal, _ := Challenge{Time: time.UnixMilli(42), RelayID: "relay"}.Append(nil)
	f.Add(chal)
	f.Add(SignAuth(k, chal).Append(nil))
	f.Add(AppendReady(nil))
	f.Add(AppendPacket(nil, k.Public(), []byte("hello")))
	f.Add(AppendBatchRecord(AppendBatchRecord([]byte{TypeBatch}, k.Public(), []byte("a")), k.Public(), []byte("bc")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseChallenge(b); err == nil {
			out, err := c.Append(nil)
			if err != nil || !bytes.Equal(out, b) {
				t.Errorf("challenge round trip: %x -> %x (%v)", b, out, err)
			}
		}
		if a, err := ParseAuth(b); err == nil {
			if out := a.Append(nil); !bytes.Equal(out, b) {
				t.Errorf("auth round trip: %x -> %x", b, out)
			}
		}
		if key, p, err := ParsePacket(b); err == nil {
			if out := AppendPacket(nil, key, p); !bytes.Equal(out, b) {
				t.Errorf("packet round trip: %x -> %x", b, out)
			}
		}
		_ = ParseReady(b)
		if r, err := ParseBatch(b); err == nil {
			out := []byte{TypeBatch}
			for {
				key, p, ok, err := r.Next()
				if err != nil {
					if bytes.HasPrefix(b, out) {
						break
					}
					t.Fatalf("batch records before the error %x are not a prefix of %x", out, b)
				}
				if !ok {
					if !bytes.Equal(out, b) {
						t.Errorf("batch round trip: %x -> %x", b, out)
					}
					break
				}
				out = AppendBatchRecord(out, key, p)
			}
		}
	})
}

func pubBytes(k nodekey.PrivateKey) []byte {
	p := k.Public()
	return p[:]
}
