package server

import (
	"net"
)

// DefaultSocketBuffer is the socket buffer size TuneListener sets when given 0.
const DefaultSocketBuffer = 1 << 20

// TuneListener wraps l so every accepted TCP connection gets send and receive
// buffers of bufBytes (DefaultSocketBuffer when 0) and TCP_NODELAY. The
// kernel caps the sizes at net.core.{r,w}mem_max.
func TuneListener(l net.Listener, bufBytes int) net.Listener {
	if bufBytes <= 0 {
		bufBytes = DefaultSocketBuffer
	}
	return &tunedListener{Listener: l, size: bufBytes}
}

type tunedListener struct {
	net.Listener
	size int
}

func (l *tunedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// Best effort: a refused size leaves the kernel default.
		_ = tc.SetReadBuffer(l.size)
		_ = tc.SetWriteBuffer(l.size)
		_ = tc.SetNoDelay(true)
	}
	return c, nil
}
