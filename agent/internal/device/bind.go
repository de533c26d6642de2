package device

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.zx2c4.com/wireguard/conn"
)

// DefaultReceiveBuffer is the UDP sockets' receive buffer (SO_RCVBUF, so
// the kernel holds up to twice as much, counted with its overhead) unless
// NewBind is told otherwise. The socket is where datagrams wait when the
// node's reader falls behind (a CPU-bound receiver), in front of the peer
// queues' CoDel and their bypass for sparse packets: a ping that arrives
// behind a full buffer waits for all of it. Measured on 2 CPUs during a
// 4-stream transfer (agent/README.md, Benchmark): with wireguard-go's 7 MiB
// the loaded RTT was 3.3-3.5 ms at the median and 11-13 ms at p99, with 768
// KiB 2.5 ms and 8 ms at 0.96-1.00x the throughput, with 256 KiB 1.4 ms and
// 6 ms at 0.8x the throughput.
const DefaultReceiveBuffer = 768 << 10

// NewBind returns the UDP bind for a Device. With offload it is
// conn.StdNetBind: batched recvmmsg/sendmmsg plus UDP GSO and GRO where
// the kernel offers them. Without, it is a bind that still batches
// (recvmmsg/sendmmsg) but never asks for GSO or GRO: the switch for kernels
// or NICs where the offloads misbehave. Both carry UDP endpoints only.
// Their sockets get receiveBuffer bytes of receive buffer
// (DefaultReceiveBuffer when 0), beyond net.core.rmem_max where the
// process may (CAP_NET_ADMIN).
func NewBind(offload bool, receiveBuffer int) Bind {
	if receiveBuffer <= 0 {
		receiveBuffer = DefaultReceiveBuffer
	}
	if offload {
		b := conn.NewStdNetBind().(*conn.StdNetBind)
		b.SetReceiveBuffer(receiveBuffer)
		return stdBind{b}
	}
	return &plainBind{rcvbuf: receiveBuffer}
}

// stdBind is conn.StdNetBind with typed endpoints.
type stdBind struct{ *conn.StdNetBind }

// UDPEndpoint implements Bind.
func (stdBind) UDPEndpoint(ap netip.AddrPort) conn.Endpoint { return udpEndpoint(ap) }

// udpEndpoint is the *conn.StdNetEndpoint of ap, the type both StdNetBind
// and plainBind send to and receive from.
func udpEndpoint(ap netip.AddrPort) conn.Endpoint {
	return &conn.StdNetEndpoint{AddrPort: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
}

// plainBind is a dual-stack UDP bind with batching and no offloads. Its
// endpoints are *conn.StdNetEndpoint.
type plainBind struct {
	rcvbuf int // SO_RCVBUF of the sockets

	mu  sync.Mutex // guards the fields below
	v4  *net.UDPConn
	v6  *net.UDPConn
	pc4 *ipv4.PacketConn
	pc6 *ipv6.PacketConn

	sendMsgs sync.Pool // *[]ipv4.Message
}

var _ Bind = (*plainBind)(nil)

func (b *plainBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.v4 != nil || b.v6 != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	v4, err := net.ListenUDP("udp4", &net.UDPAddr{Port: int(port)})
	if err != nil {
		return nil, 0, fmt.Errorf("listen udp4: %w", err)
	}
	actual := uint16(v4.LocalAddr().(*net.UDPAddr).Port)
	v6, err := net.ListenUDP("udp6", &net.UDPAddr{Port: int(actual)})
	if err != nil {
		v6 = nil // no IPv6 here: carry on with IPv4 only
	}
	setReceiveBuffer(v4, b.rcvbuf)
	if v6 != nil {
		setReceiveBuffer(v6, b.rcvbuf)
	}
	b.v4, b.pc4 = v4, ipv4.NewPacketConn(v4)
	fns := []conn.ReceiveFunc{b.receiveFunc(b.pc4)}
	if v6 != nil {
		b.v6, b.pc6 = v6, ipv6.NewPacketConn(v6)
		fns = append(fns, b.receiveFunc(b.pc6))
	}
	b.sendMsgs.New = func() any {
		m := make([]ipv4.Message, conn.IdealBatchSize)
		for i := range m {
			m[i].Buffers = make([][]byte, 1)
		}
		return &m
	}
	return fns, actual, nil
}

type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

func (b *plainBind) receiveFunc(r batchReader) conn.ReceiveFunc {
	msgs := make([]ipv4.Message, conn.IdealBatchSize)
	for i := range msgs {
		msgs[i].Buffers = make([][]byte, 1)
	}
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n := min(len(bufs), len(msgs))
		for i := 0; i < n; i++ {
			msgs[i].Buffers[0] = bufs[i]
		}
		got, err := r.ReadBatch(msgs[:n], 0)
		if err != nil {
			return 0, err
		}
		for i := 0; i < got; i++ {
			sizes[i] = msgs[i].N
			ua, ok := msgs[i].Addr.(*net.UDPAddr)
			if !ok {
				sizes[i] = 0
				continue
			}
			ap := ua.AddrPort()
			eps[i] = &conn.StdNetEndpoint{AddrPort: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
		}
		return got, nil
	}
}

func (b *plainBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	if b.v4 != nil {
		errs = append(errs, b.v4.Close())
	}
	if b.v6 != nil {
		errs = append(errs, b.v6.Close())
	}
	b.v4, b.v6, b.pc4, b.pc6 = nil, nil, nil, nil
	return errors.Join(errs...)
}

func (b *plainBind) SetMark(uint32) error { return nil }

func (b *plainBind) BatchSize() int { return conn.IdealBatchSize }

func (b *plainBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return &conn.StdNetEndpoint{AddrPort: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}, nil
}

// UDPEndpoint implements Bind.
func (b *plainBind) UDPEndpoint(ap netip.AddrPort) conn.Endpoint { return udpEndpoint(ap) }

func (b *plainBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	se, ok := ep.(*conn.StdNetEndpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	b.mu.Lock()
	pc4, pc6 := b.pc4, b.pc6
	b.mu.Unlock()
	dst := net.UDPAddrFromAddrPort(se.AddrPort)
	var write func([]ipv4.Message, int) (int, error)
	switch {
	case se.Addr().Is4() && pc4 != nil:
		write = pc4.WriteBatch
	case !se.Addr().Is4() && pc6 != nil:
		write = pc6.WriteBatch
	default:
		return net.ErrClosed
	}
	mp := b.sendMsgs.Get().(*[]ipv4.Message)
	defer b.sendMsgs.Put(mp)
	msgs := *mp
	for len(bufs) > 0 {
		n := min(len(bufs), len(msgs))
		for i := 0; i < n; i++ {
			msgs[i].Buffers[0] = bufs[i]
			msgs[i].Addr = dst
		}
		sent, err := write(msgs[:n], 0)
		if err != nil {
			return err
		}
		if sent == 0 {
			return errors.New("udp send: no message written")
		}
		bufs = bufs[sent:]
	}
	return nil
}
