//go:build linux

package forward

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
)

// BenchmarkNetnsTCPThroughput compares TCP throughput from the peer to the
// container routed through the node's namespace ("routed": the container's
// address, plain forwarding) with the same through the forward ("forward":
// the node's mesh address, DNAT and masquerade):
//
//	go test ./internal/forward -run - -bench NetnsTCP -benchtime 200x
func BenchmarkNetnsTCPThroughput(b *testing.B) {
	l := newLab(b)
	must(b, "ip", "-n", l.peer, "route", "add", "10.201.1.0/24", "via", "10.201.2.1")
	must(b, "ip", "-n", l.ctr, "route", "add", "10.201.2.0/24", "via", "10.201.1.1")
	var ln net.Listener
	if err := inNetns(l.ctr, func() (err error) { ln, err = net.Listen("tcp", ":7000"); return err }); err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	svc := []desired.Service{{Name: "sink", Proto: "tcp", Port: 7000, Target: netip.AddrPortFrom(l.ctrIP, 7000)}}
	if err := l.kernel(b).Apply(context.Background(), l.mesh, svc); err != nil {
		b.Fatal(err)
	}
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	for _, tc := range []struct {
		name string
		dst  netip.Addr
	}{{"routed", l.ctrIP}, {"forward", l.mesh}} {
		b.Run(tc.name, func(b *testing.B) {
			var c net.Conn
			if err := inNetns(l.peer, func() (err error) {
				c, err = net.Dial("tcp", netip.AddrPortFrom(tc.dst, 7000).String())
				return err
			}); err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(chunk)
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
