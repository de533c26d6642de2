package transport

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
)

// stunResponder answers Binding requests on loopback with the sender's
// address in XOR-MAPPED-ADDRESS, as the registry's responder does.
func stunResponder(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, src, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 20 || binary.BigEndian.Uint16(buf) != 0x0001 {
				continue
			}
			out := make([]byte, 20, 32)
			binary.BigEndian.PutUint16(out, 0x0101)
			binary.BigEndian.PutUint16(out[2:], 12)
			copy(out[4:20], buf[4:20])
			ip := src.Addr().Unmap().As4()
			for i := range ip {
				ip[i] ^= buf[4+i]
			}
			port := src.Port() ^ 0x2112
			out = append(out, 0, 0x20, 0, 8, 0, 1, byte(port>>8), byte(port))
			out = append(out, ip[:]...)
			pc.WriteToUDPAddrPort(out, src)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestPublicAddrOnDataSocket(t *testing.T) {
	srv := stunResponder(t)
	b := NewBind(device.NewBind(false, 0))
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	// The device's readers: tunnel packets would come out here, STUN
	// answers must not.
	got := make(chan int, 64)
	readers := make(chan struct{}, len(fns))
	for _, fn := range fns {
		go func() {
			defer func() { readers <- struct{}{} }()
			bufs := [][]byte{make([]byte, 2048)}
			sizes, eps := []int{0}, make([]conn.Endpoint, 1)
			for {
				n, err := fn(bufs, sizes, eps)
				if err != nil {
					return
				}
				for i := 0; i < n; i++ {
					if sizes[i] > 0 {
						got <- sizes[i]
					}
				}
			}
		}()
	}
	t.Cleanup(func() {
		b.Close()
		for range fns {
			<-readers
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), eventCeiling)
	defer cancel()
	pub, err := b.PublicAddr(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port); pub != want {
		t.Fatalf("PublicAddr = %v, want %v (the data socket's own address)", pub, want)
	}
	if b.STUNPackets.Load() == 0 {
		t.Fatal("STUN answer not counted")
	}
	select {
	case n := <-got:
		t.Fatalf("a %d-byte STUN answer reached the device", n)
	case <-time.After(100 * time.Millisecond):
	}
}
