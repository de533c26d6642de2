package server

import (
	"context"
	"net"
	"net/netip"
	"sync"

	nfs "github.com/willscott/go-nfs"
)

// conn is an accepted connection: done closes when it is closed or a read
// fails, which ends the go-nfs server bound to it.
type conn struct {
	net.Conn
	s    *Server
	addr netip.Addr
	done chan struct{}
	once sync.Once
	tap  *tap
}

func newConn(s *Server, nc net.Conn, addr netip.Addr) *conn {
	return &conn{Conn: nc, s: s, addr: addr, done: make(chan struct{}), tap: newTap()}
}

func (c *conn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

func (c *conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		bytesIn.Add(float64(n))
		c.tap.in.feed(b[:n])
	}
	if err != nil {
		c.Close()
	}
	return n, err
}

// Write counts replies before sending them, so that a client that has its
// answer finds it counted.
func (c *conn) Write(b []byte) (int, error) {
	c.tap.out.feed(b)
	n, err := c.Conn.Write(b)
	bytesOut.Add(float64(n))
	return n, err
}

// serve runs a go-nfs server for this connection alone, so that its
// handler knows who is asking. It returns when the connection is closed.
func (c *conn) serve(ctx context.Context) {
	srv := &nfs.Server{Handler: &handler{s: c.s, addr: c.addr}, ID: c.s.verifier, Context: ctx}
	_ = srv.Serve(&oneConn{c: c})
	c.Close()
}

// oneConn is a listener that yields c once, then blocks until c is done.
type oneConn struct {
	c    *conn
	used bool
}

func (l *oneConn) Accept() (net.Conn, error) {
	if !l.used {
		l.used = true
		return l.c, nil
	}
	<-l.c.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error   { return nil }
func (l *oneConn) Addr() net.Addr { return l.c.LocalAddr() }
