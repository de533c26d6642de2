package dialer_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/sshgw/dialer"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/sshtest"
	"github.com/tunnelmesh/tunnelmesh/sshgw/packetport"
	"github.com/tunnelmesh/tunnelmesh/sshgw/server"
)

// BenchmarkSSHGW sends packets from a dialer to an sshgw server (in-agent
// mode) over loopback and reports packets/s and MB/s delivered.
func BenchmarkSSHGW(b *testing.B) {
	for _, size := range []int{64, 1280, 1400, 8192} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			var got atomic.Int64
			node := sshtest.Key(b)
			s := sshtest.StartServer(b, server.Config{OnPacket: func(nodekey.PublicKey, []byte) { got.Add(1) }}, "")
			s.SetAllowed([]nodekey.PublicKey{node.Public()})
			c, err := dialer.Dial(sshtest.Ctx(b, 10*time.Second), dialer.Config{
				Addr: s.Addr, Key: node, HostKey: s.Key.Public().SSH(),
				OnPacket: func([]byte) {}, Logger: sshtest.Quiet, QueueLen: 1024,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			pump(b, c.Send, &got, size)
		})
	}
}

// BenchmarkOpenSSH does the same through Debian's sshd and a direct-tcpip
// channel to a packet port (root only).
func BenchmarkOpenSSH(b *testing.B) {
	for _, size := range []int{64, 1280, 1400, 8192} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			var got atomic.Int64
			pp, err := packetport.Listen(packetport.Config{
				OnPacket: func(*packetport.Conn, []byte) { got.Add(1) }, Logger: sshtest.Quiet,
			})
			if err != nil {
				b.Fatal(err)
			}
			go pp.Serve(sshtest.Ctx(b, time.Hour))
			b.Cleanup(func() { pp.Close() })
			node := sshtest.Key(b)
			sshd := startOpenSSH(b, node.Public(), pp.Port())
			c, err := dialer.Dial(sshtest.Ctx(b, 10*time.Second), dialer.Config{
				Addr: sshd.addr, Key: node, User: "root", HostKey: sshd.hostKey.Public().SSH(),
				Mode: dialer.ModeDirectTCPIP, PacketPort: pp.Port(),
				OnPacket: func([]byte) {}, Logger: sshtest.Quiet, QueueLen: 1024,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			pump(b, c.Send, &got, size)
		})
	}
}

// window is the number of packets the benchmarks keep in flight.
const window = 512

// pump sends b.N packets of size bytes, keeping at most a window in flight,
// and reports what arrived.
func pump(b *testing.B, send func([]byte) error, got *atomic.Int64, size int) {
	pkt := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for int64(i)-got.Load() > window {
			time.Sleep(20 * time.Microsecond)
		}
		for {
			err := send(pkt)
			if err == nil {
				break
			}
			if !errors.Is(err, dialer.ErrQueueFull) {
				b.Fatal(err)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for got.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	n := got.Load()
	if n < int64(b.N) {
		b.Fatalf("delivered %d of %d packets (the stream is reliable: none may be lost)", n, b.N)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "pkts/s")
	b.ReportMetric(float64(n)*float64(size)/elapsed.Seconds()/1e6, "MB/s")
}
