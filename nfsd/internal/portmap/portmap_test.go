package portmap

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func call(xid, vers, proc uint32, args ...uint32) []byte {
	var b []byte
	for _, v := range append([]uint32{xid, 0, 2, Program, vers, proc, 0, 0, 0, 0}, args...) {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

func words(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint32(b, x)
	}
	return b
}

func xdrString(s string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(s)))
	b = append(b, s...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestAnswer(t *testing.T) {
	m := &Mapper{Addr: netip.MustParseAddrPort("100.64.0.1:2049")}
	head := func(xid, stat uint32) []byte { return words(xid, 1, 0, 0, 0, stat) }
	getaddr := func(netid string, prog, vers uint32) []byte {
		b := call(9, 4, 3, prog, vers)
		b = append(b, xdrString(netid)...)
		b = append(b, xdrString("")...)
		return append(b, xdrString("")...)
	}
	for _, tc := range []struct {
		name     string
		in, want []byte
	}{
		{"null", call(1, 2, 0), head(1, 0)},
		{"getport nfs v3 tcp", call(2, 2, 3, 100003, 3, 6, 0), append(head(2, 0), words(2049)...)},
		{"getport mount v3 tcp", call(3, 2, 3, 100005, 3, 6, 0), append(head(3, 0), words(2049)...)},
		{"getport nfs over udp", call(4, 2, 3, 100003, 3, 17, 0), append(head(4, 0), words(0)...)},
		{"getport nfs v4", call(5, 2, 3, 100003, 4, 6, 0), append(head(5, 0), words(0)...)},
		{"getport nlm", call(6, 2, 3, 100021, 4, 6, 0), append(head(6, 0), words(0)...)},
		{"getport short", call(7, 2, 3, 100003), head(7, 4)},
		{"dump", call(8, 2, 4), append(head(8, 0), words(
			1, 100003, 3, 6, 2049, 1, 100005, 1, 6, 2049, 1, 100005, 2, 6, 2049, 1, 100005, 3, 6, 2049, 0)...)},
		{"getaddr mount tcp", getaddr("tcp", 100005, 3), append(head(9, 0), xdrString("100.64.0.1.8.1")...)},
		{"getaddr mount udp", getaddr("udp", 100005, 3), append(head(9, 0), xdrString("")...)},
		{"getaddr tcp6", getaddr("tcp6", 100005, 3), append(head(9, 0), xdrString("")...)},
		{"other program", func() []byte { b := call(10, 2, 0); binary.BigEndian.PutUint32(b[12:], 100003); return b }(), head(10, 1)},
		{"version 5", call(11, 5, 0), append(head(11, 2), words(2, 4)...)},
		{"v3 dump", call(12, 3, 4), head(12, 3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Answer(tc.in)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("Answer = %x, %v; want %x", got, err, tc.want)
			}
		})
	}
	for _, bad := range [][]byte{nil, words(1, 1, 2, Program, 2, 0, 0, 0, 0, 0), words(1, 0, 3, Program, 2, 0, 0, 0, 0, 0), words(1, 0, 2, Program, 2, 0, 0, 1000), make([]byte, 2000)} {
		if got, err := m.Answer(bad); err == nil {
			t.Errorf("Answer(%x) = %x, want an error", bad, got)
		}
	}
}

func FuzzAnswer(f *testing.F) {
	m := &Mapper{Addr: netip.MustParseAddrPort("100.64.0.1:2049")}
	f.Add(call(1, 2, 3, 100003, 3, 6, 0))
	f.Add(call(2, 4, 3, 100005, 3))
	f.Add(call(3, 2, 4))
	f.Fuzz(func(t *testing.T, b []byte) {
		reply, err := m.Answer(b)
		if err == nil && (len(reply) < 24 || !bytes.Equal(reply[:4], b[:4])) {
			t.Fatalf("Answer(%x) = %x: no reply header with the call's xid", b, reply)
		}
	})
}

func TestServe(t *testing.T) {
	m := &Mapper{Addr: netip.MustParseAddrPort("100.64.0.1:2049")}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refuse atomic.Bool
	allow := func(a netip.Addr) bool { return !refuse.Load() && a == netip.MustParseAddr("127.0.0.1") }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- m.ServeTCP(ctx, l, allow) }()
	go func() { done <- m.ServeUDP(ctx, pc, allow) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	}()
	getport := call(7, 2, 3, 100005, 3, 6, 0)
	want := append(words(7, 1, 0, 0, 0, 0), words(2049)...)

	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	for range 2 { // two calls on one connection
		if _, err := c.Write(append(words(uint32(len(getport))|1<<31), getport...)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4+len(want))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got[4:], want) {
			t.Fatalf("tcp GETPORT = %x, %v; want %x", got, err, want)
		}
	}

	u, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(30 * time.Second))
	u.Write(getport)
	got := make([]byte, 100)
	n, err := u.Read(got)
	if err != nil || !bytes.Equal(got[:n], want) {
		t.Fatalf("udp GETPORT = %x, %v; want %x", got[:n], err, want)
	}

	// Refused sources: the TCP connection is closed, the datagram dropped.
	refuse.Store(true)
	c2, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(30 * time.Second))
	c2.Write(append(words(uint32(len(getport))|1<<31), getport...))
	if n, err := c2.Read(got); err == nil {
		t.Fatalf("refused source got %x over tcp", got[:n])
	}
	u.SetDeadline(time.Now().Add(300 * time.Millisecond))
	u.Write(getport)
	if n, err := u.Read(got); err == nil {
		t.Fatalf("refused source got %x over udp", got[:n])
	}
}
