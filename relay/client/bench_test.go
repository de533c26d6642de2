package client

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/relay/internal/relaytest"
	"github.com/tunnelmesh/tunnelmesh/relay/server"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/testkit/daemontest"
)

// BenchmarkRelay sends datagrams from one node to another through a real
// relay over TLS on loopback and reports frames/s and MB/s of payload
// delivered. The sender keeps at most `window` frames in flight (a crude
// stand-in for TCP's congestion control inside the tunnel), so the number
// measures sustained forwarding, not how fast the relay can drop.
func BenchmarkRelay(b *testing.B) {
	for _, size := range []int{64, 1280, 1400, 8192} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchRelay(b, size) })
	}
}

func benchRelay(b *testing.B, size int) {
	r := relaytest.Start(b, server.Config{QueueLen: 1024}, 0)
	const window = 512
	var got atomic.Int64
	credit := make(chan struct{}, window) // one token per frame in flight
	recv := startNode(b, r, func(c *Config) {
		c.OnPacket = func(nodekey.PublicKey, []byte) {
			got.Add(1)
			<-credit
		}
	})
	send := startNode(b, r, func(c *Config) { c.QueueLen = 1024 })
	recv.wait(b)
	send.wait(b)
	daemontest.Eventually(b, 5*time.Second, "registration", func() bool { return r.Server.NumConns() == 2 })
	pkt := make([]byte, size)
	dst := recv.key.Public()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		credit <- struct{}{}
		for {
			err := send.c.Send(dst, pkt)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrQueueFull) {
				b.Fatal(err)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for got.Load() < int64(b.N) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	n := got.Load()
	b.ReportMetric(float64(n)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(n)*float64(size)/elapsed.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(int64(b.N)-n), "dropped")
}
