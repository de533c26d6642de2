package device

import (
	"bytes"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/faketun"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// smallBuf returns pkt framed at wire.TransportHeaderSize in a small
// element's buffer, as the receive loop carries it.
func smallBuf(pkt []byte) []byte {
	b := make([]byte, smallBufSize)
	return b[:copy(b[wire.TransportHeaderSize:], pkt)+wire.TransportHeaderSize]
}

func TestPrepareGRO(t *testing.T) {
	m, _ := pairWithSink(t)
	d := m.nodes[1].dev
	udp := func(sport uint16, payload string) []byte {
		return faketun.UDPPacket([4]byte{100, 64, 0, 1}, [4]byte{100, 64, 0, 2}, sport, 53, []byte(payload))
	}
	icmp := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 100, 64, 0, 1, 100, 64, 0, 2, 8, 0, 0, 0, 0, 0, 0, 0}
	frag := udp(1, "fragment")
	frag[6] = 0x20 // more fragments
	tests := []struct {
		name  string
		pkts  [][]byte
		moved []int // packets that must move into 64 KiB scratch buffers
	}{
		{"one flow", [][]byte{udp(1, "a"), udp(1, "b"), udp(1, "c")}, []int{0}},
		{"two flows interleaved", [][]byte{udp(1, "a"), udp(2, "b"), udp(1, "c"), udp(2, "d")}, []int{0, 1}},
		{"single packets stay", [][]byte{udp(1, "a"), udp(2, "b"), udp(3, "c")}, nil},
		{"not TCP or UDP, or fragments", [][]byte{icmp, icmp, frag, frag, udp(4, "x"), udp(4, "y")}, []int{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := d.pools.getBatch(nil)
			var pp packet.Parsed
			for _, p := range tt.pkts {
				pp.Parse(p)
				b.bufs = append(b.bufs, smallBuf(p))
				b.gro = append(b.gro, groFlowOf(&pp))
			}
			bufs := b.bufs
			d.prepareGRO(b)
			var moved []int
			for i, buf := range bufs {
				if cap(buf) >= wire.MaxMessageSize {
					moved = append(moved, i)
				}
				if !bytes.Equal(buf[wire.TransportHeaderSize:], tt.pkts[i]) {
					t.Errorf("packet %d changed: %x, want %x", i, buf[wire.TransportHeaderSize:], tt.pkts[i])
				}
			}
			if len(moved) != len(tt.moved) || len(b.scratch) != len(tt.moved) {
				t.Fatalf("prepareGRO moved %v (%d scratch), want %v", moved, len(b.scratch), tt.moved)
			}
			for i := range moved {
				if moved[i] != tt.moved[i] {
					t.Fatalf("prepareGRO moved %v, want %v", moved, tt.moved)
				}
			}
			for _, e := range b.scratch {
				d.pools.putElem(e)
			}
			b.scratch = b.scratch[:0]
			d.pools.putBatch(b)
		})
	}
}

func TestPrepareGSO(t *testing.T) {
	m, _ := pairWithSink(t)
	d := m.nodes[0].dev
	dgram := func(n int, fill byte) []byte {
		b := make([]byte, smallBufSize)
		return b[:copy(b, bytes.Repeat([]byte{fill}, n))]
	}
	run := func(n, size int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = dgram(size, byte(i))
		}
		return out
	}
	cat := func(parts ...[][]byte) [][]byte {
		var out [][]byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name  string
		bufs  [][]byte
		moved []int // run starts that must move into 64 KiB scratch buffers
	}{
		{"one run", run(10, 1452), []int{0}},
		{"lone datagram", run(1, 1452), nil},
		{"short tail ends the run", cat(run(3, 1452), run(1, 100), run(2, 1452)), []int{0, 4}},
		{"bigger datagram starts a run", cat(run(2, 1200), run(2, 1452)), []int{0, 2}},
		{"a run that fits its first buffer stays", run(3, 500), nil},
		{"64 datagrams at most", run(130, 200), []int{0, 64}},
		{"64 KiB at most", run(50, 1452), []int{0, 45}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := d.pools.getBatch(nil)
			want := make([][]byte, len(tt.bufs))
			for i, buf := range tt.bufs {
				want[i] = append([]byte(nil), buf...)
			}
			d.prepareGSO(b, tt.bufs)
			var moved []int
			for i, buf := range tt.bufs {
				if cap(buf) >= wire.MaxMessageSize {
					moved = append(moved, i)
				}
				if !bytes.Equal(buf, want[i]) {
					t.Errorf("datagram %d changed", i)
				}
			}
			if len(moved) != len(tt.moved) {
				t.Fatalf("prepareGSO moved %v, want %v", moved, tt.moved)
			}
			for i := range moved {
				if moved[i] != tt.moved[i] {
					t.Fatalf("prepareGSO moved %v, want %v", moved, tt.moved)
				}
			}
			for _, e := range b.scratch {
				d.pools.putElem(e)
			}
			b.scratch = b.scratch[:0]
			d.pools.putBatch(b)
		})
	}
}
