package memnet

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/conn"
)

func open(t *testing.T, b *Bind, port uint16) conn.ReceiveFunc {
	t.Helper()
	fns, _, err := b.Open(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return fns[0]
}

func recv(t *testing.T, fn conn.ReceiveFunc) ([]byte, netip.AddrPort) {
	t.Helper()
	bufs := [][]byte{make([]byte, 100)}
	sizes := make([]int, 1)
	eps := make([]conn.Endpoint, 1)
	n, err := fn(bufs, sizes, eps)
	if err != nil || n != 1 {
		t.Fatalf("receive = %d, %v", n, err)
	}
	return bufs[0][:sizes[0]], eps[0].(*Endpoint).AddrPort
}

func TestSendReceiveRebind(t *testing.T) {
	n := New()
	a := n.NewBind(netip.MustParseAddr("192.0.2.1"), 4)
	b := n.NewBind(netip.MustParseAddr("192.0.2.2"), 4)
	open(t, a, 1000)
	fb := open(t, b, 2000)
	ep, err := a.ParseEndpoint("192.0.2.2:2000")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Send([][]byte{[]byte("hi")}, ep); err != nil {
		t.Fatal(err)
	}
	got, from := recv(t, fb)
	if string(got) != "hi" || from != netip.MustParseAddrPort("192.0.2.1:1000") {
		t.Fatalf("got %q from %s", got, from)
	}
	a.Rebind(netip.MustParseAddr("198.51.100.1"))
	a.Send([][]byte{[]byte("moved")}, ep)
	got, from = recv(t, fb)
	if string(got) != "moved" || from != netip.MustParseAddrPort("198.51.100.1:1000") {
		t.Fatalf("after rebind got %q from %s", got, from)
	}
	n.SetFilter(func(src, dst netip.AddrPort, p []byte) bool { return string(p) != "drop" })
	if n.Inject(netip.MustParseAddrPort("203.0.113.1:1"), b.Addr(), []byte("drop")) {
		t.Fatal("filtered datagram delivered")
	}
	if !n.Inject(netip.MustParseAddrPort("203.0.113.1:1"), b.Addr(), []byte("forged")) {
		t.Fatal("injected datagram not delivered")
	}
	got, from = recv(t, fb)
	if string(got) != "forged" || from.Port() != 1 {
		t.Fatalf("injected: got %q from %s", got, from)
	}
	b.Close()
	if _, err := fb([][]byte{make([]byte, 10)}, []int{0}, []conn.Endpoint{nil}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("receive after Close = %v, want net.ErrClosed", err)
	}
}
