package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInitiationGolden(t *testing.T) {
	var m Initiation
	m.Sender = 0x04030201
	copy(m.Noise[:], seq(InitiationNoiseSize, 0x10))
	copy(m.MAC1[:], seq(MACSize, 0xa0))
	copy(m.MAC2[:], seq(MACSize, 0xc0))
	golden := unhex(t, `01020000 01020304`+hex.EncodeToString(seq(InitiationNoiseSize, 0x10))+
		hex.EncodeToString(seq(16, 0xa0))+hex.EncodeToString(seq(16, 0xc0)))
	got := m.MarshalTo(make([]byte, InitiationSize))
	if !bytes.Equal(got, golden) {
		t.Fatalf("MarshalTo = %x, want %x", got, golden)
	}
	if len(got) != 148 {
		t.Fatalf("len = %d, want 148", len(got))
	}
	back, err := ParseInitiation(golden)
	if err != nil || back != m {
		t.Fatalf("ParseInitiation = %+v, %v, want %+v", back, err, m)
	}
}

func TestResponseGolden(t *testing.T) {
	m := Response{Sender: 0x11223344, Receiver: 0x55667788}
	copy(m.Noise[:], seq(ResponseNoiseSize, 0x20))
	copy(m.MAC1[:], seq(MACSize, 0xa0))
	copy(m.MAC2[:], seq(MACSize, 0xc0))
	golden := unhex(t, `02020000 44332211 88776655`+hex.EncodeToString(seq(ResponseNoiseSize, 0x20))+
		hex.EncodeToString(seq(16, 0xa0))+hex.EncodeToString(seq(16, 0xc0)))
	got := m.MarshalTo(make([]byte, ResponseSize))
	if !bytes.Equal(got, golden) || len(got) != 92 {
		t.Fatalf("MarshalTo = %x, want %x", got, golden)
	}
	back, err := ParseResponse(golden)
	if err != nil || back != m {
		t.Fatalf("ParseResponse = %+v, %v, want %+v", back, err, m)
	}
}

func TestCookieReplyGolden(t *testing.T) {
	m := CookieReply{Receiver: 7}
	copy(m.Nonce[:], seq(CookieNonceSize, 0x30))
	copy(m.Cookie[:], seq(32, 0x50))
	golden := unhex(t, `03020000 07000000`+hex.EncodeToString(seq(24, 0x30))+hex.EncodeToString(seq(32, 0x50)))
	got := m.MarshalTo(make([]byte, CookieReplySize))
	if !bytes.Equal(got, golden) || len(got) != 64 {
		t.Fatalf("MarshalTo = %x, want %x", got, golden)
	}
	back, err := ParseCookieReply(golden)
	if err != nil || back != m {
		t.Fatalf("ParseCookieReply = %+v, %v, want %+v", back, err, m)
	}
}

func TestTransportGolden(t *testing.T) {
	b := make([]byte, TransportMinSize)
	PutTransportHeader(b, 0xdeadbeef, 0x0102030405060708)
	golden := unhex(t, `04020000 efbeadde 0807060504030201`)
	if !bytes.Equal(b[:16], golden) {
		t.Fatalf("PutTransportHeader = %x, want %x", b[:16], golden)
	}
	r, c, err := ParseTransportHeader(b)
	if err != nil || r != 0xdeadbeef || c != 0x0102030405060708 {
		t.Fatalf("ParseTransportHeader = %x, %x, %v", r, c, err)
	}
}

func TestParseErrors(t *testing.T) {
	valid := (&Initiation{}).MarshalTo(make([]byte, InitiationSize))
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short prefix", []byte{1, 1}, ErrTruncated},
		{"bad version", append([]byte{1, 1, 0, 0}, valid[4:]...), ErrBadVersion},
		{"reserved", append([]byte{1, 2, 0, 9}, valid[4:]...), ErrReserved},
		{"unknown type", append([]byte{9, 2, 0, 0}, valid[4:]...), ErrUnknownType},
		{"wrong type", append([]byte{2, 2, 0, 0}, valid[4:]...), ErrUnknownType},
		{"too short", valid[:147], ErrBadLength},
		{"too long", append(append([]byte{}, valid...), 0), ErrBadLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInitiation(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseInitiation(%x) error = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
	if _, _, err := ParseTransportHeader(make([]byte, 31)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("ParseTransportHeader(31 bytes) error = %v, want ErrTruncated", err)
	}
	if _, err := ParseResponse(valid); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("ParseResponse(initiation) error = %v, want ErrUnknownType", err)
	}
	if _, err := ParseCookieReply(valid[:64]); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("ParseCookieReply(initiation prefix) error = %v, want ErrUnknownType", err)
	}
}

func TestPaddedLen(t *testing.T) {
	tests := []struct{ n, limit, want int }{
		{0, 1420, 0}, {1, 1420, 16}, {16, 1420, 16}, {17, 1420, 32}, {1419, 1420, 1420}, {1420, 1420, 1420}, {1500, 1420, 1504},
	}
	for _, tt := range tests {
		if got := PaddedLen(tt.n, tt.limit); got != tt.want {
			t.Errorf("PaddedLen(%d, %d) = %d, want %d", tt.n, tt.limit, got, tt.want)
		}
	}
}

func TestPrologue(t *testing.T) {
	if got, want := string(Prologue("m1")), "tunnelmesh v2 mesh=m1"; got != want {
		t.Fatalf("Prologue = %q, want %q", got, want)
	}
}

func TestTransportHeaderNoAlloc(t *testing.T) {
	b := make([]byte, 64)
	allocs := testing.AllocsPerRun(100, func() {
		PutTransportHeader(b, 1, 2)
		_, _, _ = ParseTransportHeader(b)
	})
	if allocs != 0 {
		t.Fatalf("allocs = %v, want 0", allocs)
	}
}
