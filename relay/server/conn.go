package server

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/tunnelmesh/tunnelmesh/relay/internal/frames"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/relaywire"
)

// conn is one authenticated node's connection. Its reader runs in the
// ServeHTTP goroutine; run starts and waits for the writer and the pinger.
type conn struct {
	s     *Server
	ws    *websocket.Conn
	key   nodekey.PublicKey
	queue chan *[]byte // frames for this node, source key already set

	ctx    context.Context // cancelled when the connection ends
	cancel context.CancelFunc

	kickOnce sync.Once
	mu       sync.Mutex // guards closeReason
	closeMsg string
}

func newConn(s *Server, ws *websocket.Conn, key nodekey.PublicKey) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, ws: ws, key: key, queue: make(chan *[]byte, s.cfg.QueueLen), ctx: ctx, cancel: cancel}
}

// kick closes the connection with a close frame (code, reason). It returns at
// once; the close handshake runs in a goroutine the server waits for.
func (c *conn) kick(code websocket.StatusCode, reason string) {
	c.kickOnce.Do(func() {
		c.setReason(reason)
		c.s.wg.Add(1)
		go func() {
			defer c.s.wg.Done()
			c.ws.Close(code, reason)
		}()
	})
}

func (c *conn) setReason(r string) {
	c.mu.Lock()
	if c.closeMsg == "" {
		c.closeMsg = r
	}
	c.mu.Unlock()
}

func (c *conn) reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeMsg
}

// run forwards until the connection ends, then stops its goroutines.
func (c *conn) run() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.writeLoop() }()
	go func() { defer wg.Done(); c.pingLoop() }()
	err := c.readLoop()
	c.setReason(err.Error())
	c.cancel()
	c.ws.CloseNow() // no-op if a kick already closed it
	wg.Wait()
	// Frames still queued for this node are lost.
	for {
		select {
		case b := <-c.queue:
			c.s.metrics.drop(dropClosed)
			frames.Put(b)
		default:
			return
		}
	}
}

// readLoop reads the node's messages and hands each datagram to its
// destination's queue. It never blocks on another connection.
func (c *conn) readLoop() error {
	rbuf := make([]byte, relaywire.MaxMessageLen)
	m := c.s.metrics
	for {
		// A context without Done keeps coder/websocket from allocating a
		// timer per message; kick and CloseNow unblock the read.
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			return err
		}
		n, err := frames.ReadMessage(r, rbuf)
		if err != nil {
			return err
		}
		msg := rbuf[:n]
		if typ != websocket.MessageBinary || n == 0 {
			m.drop(dropMalformed)
			continue
		}
		switch msg[0] {
		case relaywire.TypePacket:
			dst, payload, err := relaywire.ParsePacket(msg)
			if err != nil {
				m.drop(dropMalformed)
				continue
			}
			c.route(dst, payload)
		case relaywire.TypeBatch:
			br, err := relaywire.ParseBatch(msg)
			if err != nil {
				m.drop(dropMalformed)
				continue
			}
			for {
				dst, payload, ok, err := br.Next()
				if err != nil {
					m.drop(dropMalformed)
				}
				if !ok {
					break
				}
				c.route(dst, payload)
			}
		default:
			m.drop(dropMalformed)
		}
	}
}

// route queues payload for dst, from this connection's node, or drops it.
func (c *conn) route(dst nodekey.PublicKey, payload []byte) {
	d := c.s.lookup(dst)
	if d == nil {
		c.s.metrics.drop(dropNoPeer)
		return
	}
	b := frames.NewPacket(c.key, payload)
	select {
	case d.queue <- b:
	default:
		c.s.metrics.drop(dropQueueFull)
		frames.Put(b)
	}
}

func (c *conn) writeLoop() {
	m := c.s.metrics
	co := frames.NewCoalescer()
	write := func(msg []byte) error { return c.ws.Write(context.Background(), websocket.MessageBinary, msg) }
	for {
		select {
		case <-c.ctx.Done():
			return
		case b := <-c.queue:
			n, size, err := co.Drain(b, c.queue, write)
			m.framesForwarded.Add(float64(n))
			m.bytesForwarded.Add(float64(size))
			if err != nil {
				m.drop(dropWriteError)
				c.ws.CloseNow()
				return
			}
		}
	}
}

func (c *conn) pingLoop() {
	t := time.NewTicker(c.s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.PingTimeout)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil && c.ctx.Err() == nil {
				c.setReason("ping timeout")
				c.ws.CloseNow()
				return
			}
		}
	}
}
