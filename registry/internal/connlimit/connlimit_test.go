package connlimit

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func TestCapPerSource(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	l := New(ln, 2, func(netip.Addr) { refused.Add(1) })
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := dial(), dial()
	defer a.Close()
	defer b.Close()
	sa, sb := <-accepted, <-accepted
	third := dial()
	defer third.Close()
	// The third is closed by the server: a read ends at once.
	third.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil {
		t.Fatal("third connection from one source was served")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("third connection from one source still open after 30s")
	}
	if refused.Load() != 1 || l.Open(netip.MustParseAddr("127.0.0.1")) != 2 {
		t.Fatalf("refused %d open %d, want 1 and 2", refused.Load(), l.Open(netip.MustParseAddr("127.0.0.1")))
	}
	// Closing one (twice: counted once) makes room for one more.
	sa.Close()
	sa.Close()
	d := dial()
	defer d.Close()
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("no connection accepted after one closed")
	}
	sb.Close()
	if n := l.Open(netip.MustParseAddr("127.0.0.1")); n != 1 {
		t.Fatalf("open = %d, want 1", n)
	}
}
