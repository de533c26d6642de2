package faketun

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
)

func TestReadWriteEcho(t *testing.T) {
	d := New("t0", 1420, 8)
	p := UDPPacket([4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}, 1, 2, []byte("abc"))
	if packet.Checksum(p[:20], 0) != 0 {
		t.Fatal("IPv4 header checksum invalid")
	}
	d.Inject(p)
	d.Inject(p)
	bufs := [][]byte{make([]byte, 100), make([]byte, 100)}
	sizes := make([]int, 2)
	n, err := d.Read(bufs, sizes, 16)
	if err != nil || n != 2 || sizes[0] != len(p) || string(bufs[0][16:16+sizes[0]]) != string(p) {
		t.Fatalf("Read = %d, %v, sizes %v", n, err, sizes)
	}
	if _, err := d.Write([][]byte{append(make([]byte, 16), p...)}, 16); err != nil {
		t.Fatal(err)
	}
	if got := <-d.Outbound(); string(got) != string(p) {
		t.Fatalf("Outbound = %x", got)
	}
	// An echo request is answered, with valid checksums.
	req := make([]byte, 28)
	req[0] = 0x45
	binary.BigEndian.PutUint16(req[2:], 28)
	req[9] = 1
	copy(req[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	req[20] = 8
	d.AnswerPings = true
	d.Write([][]byte{req}, 0)
	n, _ = d.Read(bufs[:1], sizes, 0)
	r := bufs[0][:sizes[0]]
	if n != 1 || r[20] != 0 || r[12] != 10 || r[15] != 2 || packet.Checksum(r[:20], 0) != 0 || packet.Checksum(r[20:28], 0) != 0 {
		t.Fatalf("echo reply = %x", r)
	}
	d.Close()
	if _, err := d.Read(bufs, sizes, 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close = %v", err)
	}
	if _, ok := <-d.Events(); ok {
		if _, ok := <-d.Events(); ok {
			t.Fatal("Events not closed")
		}
	}
}
