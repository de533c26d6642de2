package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// idleTimeout closes a TCP connection that sends no call for this long.
const idleTimeout = 30 * time.Second

// ServeTCP answers calls on l until ctx ends or l fails, closing l. allow
// decides, per source address, whether a connection is served. It waits for
// its connections' goroutines before returning.
func (m *Mapper) ServeTCP(ctx context.Context, l net.Listener, allow func(netip.Addr) bool) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex // guards conns
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		ta, ok := c.RemoteAddr().(*net.TCPAddr)
		if !ok || !allow(ta.AddrPort().Addr().Unmap()) {
			c.Close()
			continue
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.serveConn(c)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
}

func (m *Mapper) serveConn(c net.Conn) {
	var mark [4]byte
	for {
		var call []byte
		for {
			c.SetReadDeadline(time.Now().Add(idleTimeout))
			if _, err := io.ReadFull(c, mark[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(mark[:])
			size := int(n &^ (1 << 31))
			if len(call)+size > maxCall {
				return
			}
			frag := make([]byte, size)
			if _, err := io.ReadFull(c, frag); err != nil {
				return
			}
			call = append(call, frag...)
			if n&(1<<31) != 0 {
				break
			}
		}
		reply, err := m.Answer(call)
		if err != nil {
			return
		}
		out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(reply)), uint32(len(reply))|1<<31)
		c.SetWriteDeadline(time.Now().Add(idleTimeout))
		if _, err := c.Write(append(out, reply...)); err != nil {
			return
		}
	}
}

// ServeUDP answers datagrams on pc until ctx ends, closing pc. Datagrams
// from sources allow refuses are dropped.
func (m *Mapper) ServeUDP(ctx context.Context, pc net.PacketConn, allow func(netip.Addr) bool) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer pc.Close()
	buf := make([]byte, maxCall+1)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok || n > maxCall || !allow(ua.AddrPort().Addr().Unmap()) {
			continue
		}
		reply, err := m.Answer(buf[:n])
		if err != nil {
			continue
		}
		pc.WriteTo(reply, from)
	}
}
