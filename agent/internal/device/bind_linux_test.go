package device

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

// Both binds give their sockets the receive buffer they are asked for, and
// DefaultReceiveBuffer when asked for none.
func TestReceiveBuffer(t *testing.T) {
	testenv.NeedRoot(t, "sets receive buffers beyond net.core.rmem_max (SO_RCVBUFFORCE)")
	for _, offload := range []bool{true, false} {
		for _, size := range []int{0, 256 << 10, 4 << 20} {
			b := NewBind(offload, size)
			_, port, err := b.Open(0)
			if err != nil {
				t.Fatalf("offload %v: open: %v", offload, err)
			}
			want := size
			if want == 0 {
				want = DefaultReceiveBuffer
			}
			got := udpReceiveBuffers(t, port)
			if len(got) == 0 {
				t.Fatalf("offload %v: no UDP socket of this process on port %d", offload, port)
			}
			for _, rb := range got {
				// Linux doubles what it is given, for its own overhead.
				if rb != 2*want {
					t.Errorf("offload %v, receive buffer %d: SO_RCVBUF %d, want %d", offload, size, rb, 2*want)
				}
			}
			b.Close()
		}
	}
}

// udpReceiveBuffers returns SO_RCVBUF of every UDP socket of this process
// bound to port.
func udpReceiveBuffers(t *testing.T, port uint16) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_DGRAM {
			continue
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			continue
		}
		var p int
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			p = sa.Port
		case *unix.SockaddrInet6:
			p = sa.Port
		}
		if p != int(port) {
			continue
		}
		rb, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rb)
	}
	return out
}
