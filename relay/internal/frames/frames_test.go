package frames

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/relaywire"
)

func key(b byte) nodekey.PublicKey {
	var k nodekey.PublicKey
	k[0] = b
	return k
}

type msg struct {
	key nodekey.PublicKey
	p   []byte
}

// decode returns the datagrams of a packet or batch message.
func decode(t *testing.T, m []byte) []msg {
	t.Helper()
	if m[0] == relaywire.TypePacket {
		k, p, err := relaywire.ParsePacket(m)
		if err != nil {
			t.Fatal(err)
		}
		return []msg{{k, bytes.Clone(p)}}
	}
	r, err := relaywire.ParseBatch(m)
	if err != nil {
		t.Fatal(err)
	}
	var out []msg
	for {
		k, p, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, msg{k, bytes.Clone(p)})
	}
}

func TestDrain(t *testing.T) {
	tests := []struct {
		name     string
		sizes    []int
		messages int // messages written
	}{
		{"lone packet stays a packet message", []int{100}, 1},
		{"three packets make one batch", []int{100, 200, 300}, 1},
		{"big payloads split batches", []int{40000, 40000, 10}, 2},
		{"max payloads one per batch", []int{65535, 65535}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := make(chan *[]byte, 16)
			var want []msg
			for i, n := range tt.sizes {
				p := bytes.Repeat([]byte{byte(i + 1)}, n)
				want = append(want, msg{key(byte(i)), p})
				if i > 0 {
					q <- NewPacket(key(byte(i)), p)
				}
			}
			var written [][]byte
			c := NewCoalescer()
			frames, nbytes, err := c.Drain(NewPacket(want[0].key, want[0].p), q, func(m []byte) error {
				if len(m) > relaywire.MaxMessageLen {
					t.Fatalf("message of %d bytes", len(m))
				}
				written = append(written, bytes.Clone(m))
				return nil
			})
			if err != nil || frames != len(tt.sizes) {
				t.Fatalf("Drain = %d frames, %v; want %d", frames, err, len(tt.sizes))
			}
			total := 0
			for _, n := range tt.sizes {
				total += n
			}
			if nbytes != total {
				t.Errorf("bytes = %d, want %d", nbytes, total)
			}
			if len(written) != tt.messages {
				t.Errorf("wrote %d messages, want %d", len(written), tt.messages)
			}
			var got []msg
			for _, m := range written {
				got = append(got, decode(t, m)...)
			}
			if len(got) != len(want) {
				t.Fatalf("decoded %d datagrams, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].key != want[i].key || !bytes.Equal(got[i].p, want[i].p) {
					t.Errorf("datagram %d differs", i)
				}
			}
		})
	}
}

func TestDrainWriteError(t *testing.T) {
	q := make(chan *[]byte, 4)
	q <- NewPacket(key(2), []byte("b"))
	boom := errors.New("boom")
	frames, _, err := NewCoalescer().Drain(NewPacket(key(1), []byte("a")), q, func([]byte) error { return boom })
	if !errors.Is(err, boom) || frames != 0 {
		t.Errorf("Drain = %d, %v; want 0, boom", frames, err)
	}
}

func TestDrainNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector (sync.Pool drops items)")
	}
	q := make(chan *[]byte, 8)
	c := NewCoalescer()
	p := make([]byte, 1400)
	write := func([]byte) error { return nil }
	allocs := testing.AllocsPerRun(200, func() {
		for range 4 {
			q <- NewPacket(key(1), p)
		}
		c.Drain(NewPacket(key(1), p), q, write)
	})
	if allocs > 0 {
		t.Errorf("Drain allocs = %v, want 0", allocs)
	}
}
