package frame

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want []byte
	}{
		{"one byte", []byte{0xaa}, []byte{0x00, 0x01, 0xaa}},
		{"three bytes", []byte("abc"), []byte{0x00, 0x03, 'a', 'b', 'c'}},
		{"258 bytes", bytes.Repeat([]byte{7}, 258), append([]byte{0x01, 0x02}, bytes.Repeat([]byte{7}, 258)...)},
		{"max", bytes.Repeat([]byte{1}, MaxPacket), append([]byte{0xff, 0xff}, bytes.Repeat([]byte{1}, MaxPacket)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Append(nil, tt.pkt)
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("Append(%.16x) = %.20x, %v; want %.20x", tt.pkt, got, err, tt.want)
			}
			back, err := NewReader(bytes.NewReader(got)).Next()
			if err != nil || !bytes.Equal(back, tt.pkt) {
				t.Errorf("Next(%.20x) = %.16x, %v; want %.16x", got, back, err, tt.pkt)
			}
		})
	}
}

func TestAppendErrors(t *testing.T) {
	if _, err := Append(nil, nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("Append(empty) = %v, want ErrEmpty", err)
	}
	if _, err := Append(nil, make([]byte, MaxPacket+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Append(65536 bytes) = %v, want ErrTooLarge", err)
	}
}

func TestReaderStream(t *testing.T) {
	var stream []byte
	for _, p := range []string{"one", "two", "three"} {
		stream, _ = Append(stream, []byte(p))
	}
	r := NewReader(bytes.NewReader(stream))
	for _, want := range []string{"one", "two", "three"} {
		got, err := r.Next()
		if err != nil || string(got) != want {
			t.Fatalf("Next() = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next() at end = %v, want io.EOF", err)
	}
}

func TestReaderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"half header", []byte{0x00}, ErrTruncated},
		{"short body", []byte{0x00, 0x05, 'a', 'b'}, ErrTruncated},
		{"header only", []byte{0x00, 0x05}, ErrTruncated},
		{"zero length", []byte{0x00, 0x00, 'x'}, ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewReader(bytes.NewReader(tt.in)).Next(); !errors.Is(err, tt.want) {
				t.Errorf("Next(%x) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestReaderNoAlloc(t *testing.T) {
	one, _ := Append(nil, make([]byte, 1400))
	src := bytes.NewReader(nil)
	r := NewReader(src)
	allocs := testing.AllocsPerRun(1000, func() {
		src.Reset(one)
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Next allocs = %v, want 0", allocs)
	}
}

// FuzzReader: any byte stream yields frames that re-encode to a prefix of
// the stream, then a clean EOF or an error; never a panic.
func FuzzReader(f *testing.F) {
	s, _ := Append(nil, []byte("hello"))
	s, _ = Append(s, []byte{1, 2, 3})
	f.Add(s)
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		var out []byte
		for {
			p, err := r.Next()
			if err != nil {
				break
			}
			out, _ = Append(out, p)
		}
		if !bytes.HasPrefix(in, out) {
			t.Errorf("re-encoded frames %x are not a prefix of %x", out, in)
		}
	})
}
