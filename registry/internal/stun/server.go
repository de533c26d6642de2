package stun

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
)

// Counter counts answered and dropped packets by result; nil is allowed.
type Counter interface {
	Inc(result string)
}

// Server answers Binding requests on one UDP socket.
type Server struct {
	conn  *net.UDPConn
	log   *slog.Logger
	count Counter
}

// Listen opens the UDP socket at addr (":3478").
func Listen(addr string, log *slog.Logger, count Counter) (*Server, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	return &Server{conn: c, log: log, count: count}, nil
}

// Addr returns the socket's local address.
func (s *Server) Addr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Run answers requests until ctx ends, then closes the socket. The
// per-packet path does not allocate.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		s.conn.Close()
	}()
	defer wg.Wait()
	buf := make([]byte, 1500)
	out := make([]byte, 0, 128)
	var req Request
	for {
		n, src, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.log.Warn("stun read", "err", err)
			continue
		}
		resp := s.handle(buf[:n], src, &req, out[:0])
		if resp == nil {
			continue
		}
		if _, err := s.conn.WriteToUDPAddrPort(resp, src); err != nil && ctx.Err() == nil {
			s.log.Debug("stun write", "err", err)
		}
	}
}

// handle returns the answer to pkt, or nil for packets that get none.
func (s *Server) handle(pkt []byte, src netip.AddrPort, req *Request, out []byte) []byte {
	if err := Parse(pkt, req); err != nil {
		s.inc("malformed")
		return nil
	}
	if req.NumUnknown > 0 {
		s.inc("unknown_attribute")
	} else {
		s.inc("ok")
	}
	return AppendResponse(out, req, src)
}

func (s *Server) inc(result string) {
	if s.count != nil {
		s.count.Inc(result)
	}
}

// Close closes the socket (Run closes it too when its context ends).
func (s *Server) Close() error { return s.conn.Close() }
