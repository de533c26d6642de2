// Package memnet is an in-memory UDP network for tests: every Bind it makes
// is a conn.Bind (golang.zx2c4.com/wireguard/conn) with its own address, and
// datagrams between them never touch the kernel. A filter can drop, observe
// or record datagrams, Inject sends forged ones, and Rebind moves a Bind to a
// new address the way a NAT rebinding does.
package memnet

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"
)

const queueLen = 4096

// Filter sees every datagram; returning false drops it.
type Filter func(src, dst netip.AddrPort, b []byte) bool

// Network connects Binds.
type Network struct {
	mu       sync.RWMutex // guards binds and nextPort
	binds    map[netip.AddrPort]*Bind
	nextPort uint16
	filter   atomic.Pointer[Filter]
	pool     sync.Pool
	blocking atomic.Bool
}

// SetBlocking makes delivery wait for room in the receiver's queue instead
// of dropping (a lossless network, for benchmarks).
func (n *Network) SetBlocking(on bool) { n.blocking.Store(on) }

// New returns an empty network.
func New() *Network {
	n := &Network{binds: make(map[netip.AddrPort]*Bind), nextPort: 40000}
	n.pool.New = func() any { return new([2048]byte) }
	return n
}

// SetFilter installs f (nil removes it).
func (n *Network) SetFilter(f Filter) {
	if f == nil {
		n.filter.Store(nil)
		return
	}
	n.filter.Store(&f)
}

// Endpoint is a memnet address.
type Endpoint struct{ netip.AddrPort }

var _ conn.Endpoint = (*Endpoint)(nil)

func (e *Endpoint) ClearSrc()           {}
func (e *Endpoint) SrcToString() string { return "" }
func (e *Endpoint) DstToString() string { return e.AddrPort.String() }
func (e *Endpoint) DstToBytes() []byte  { b, _ := e.AddrPort.MarshalBinary(); return b }
func (e *Endpoint) DstIP() netip.Addr   { return e.AddrPort.Addr() }
func (e *Endpoint) SrcIP() netip.Addr   { return netip.Addr{} }

type datagram struct {
	buf  *[2048]byte
	big  []byte
	n    int
	from *Endpoint
}

func (d *datagram) bytes() []byte {
	if d.big != nil {
		return d.big
	}
	return d.buf[:d.n]
}

// Bind is one node's UDP socket on the network.
type Bind struct {
	net   *Network
	batch int

	mu     sync.Mutex // guards the fields below
	ip     netip.Addr
	port   uint16
	self   *Endpoint
	rx     chan datagram
	closed chan struct{}
	open   bool

	Sent, Received atomic.Uint64
}

// NewBind returns a Bind at ip that reads up to batch datagrams per call.
func (n *Network) NewBind(ip netip.Addr, batch int) *Bind {
	if batch < 1 {
		batch = 1
	}
	return &Bind{net: n, ip: ip, batch: batch}
}

// Addr returns the bind's current address (valid once open).
func (b *Bind) Addr() netip.AddrPort {
	b.mu.Lock()
	defer b.mu.Unlock()
	return netip.AddrPortFrom(b.ip, b.port)
}

// Open implements conn.Bind.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	n := b.net
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	n.mu.Lock()
	if port == 0 {
		for {
			n.nextPort++
			if _, used := n.binds[netip.AddrPortFrom(b.ip, n.nextPort)]; !used {
				port = n.nextPort
				break
			}
		}
	}
	ap := netip.AddrPortFrom(b.ip, port)
	if _, used := n.binds[ap]; used {
		n.mu.Unlock()
		return nil, 0, errors.New("memnet: address in use: " + ap.String())
	}
	n.binds[ap] = b
	n.mu.Unlock()
	b.port = port
	b.self = &Endpoint{ap}
	b.rx = make(chan datagram, queueLen)
	b.closed = make(chan struct{})
	b.open = true
	rx, closed := b.rx, b.closed
	fn := func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		var d datagram
		select {
		case d = <-rx:
		case <-closed:
			return 0, net.ErrClosed
		}
		i := 0
		for {
			sizes[i] = copy(bufs[i], d.bytes())
			eps[i] = d.from
			if d.buf != nil {
				n.pool.Put(d.buf)
			}
			i++
			if i == len(bufs) || i == b.batch {
				break
			}
			select {
			case d = <-rx:
				continue
			default:
			}
			break
		}
		b.Received.Add(uint64(i))
		return i, nil
	}
	return []conn.ReceiveFunc{fn}, port, nil
}

// Rebind moves the bind to ip (same port), as a NAT rebinding would: peers
// see its datagrams from the new address, and the old address is dead.
func (b *Bind) Rebind(ip netip.Addr) {
	n := b.net
	b.mu.Lock()
	defer b.mu.Unlock()
	n.mu.Lock()
	delete(n.binds, netip.AddrPortFrom(b.ip, b.port))
	ap := netip.AddrPortFrom(ip, b.port)
	n.binds[ap] = b
	n.mu.Unlock()
	b.ip = ip
	b.self = &Endpoint{ap}
}

// Close implements conn.Bind.
func (b *Bind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return nil
	}
	b.open = false
	close(b.closed)
	b.net.mu.Lock()
	if b.net.binds[netip.AddrPortFrom(b.ip, b.port)] == b {
		delete(b.net.binds, netip.AddrPortFrom(b.ip, b.port))
	}
	b.net.mu.Unlock()
	return nil
}

// SetMark implements conn.Bind.
func (b *Bind) SetMark(uint32) error { return nil }

// BatchSize implements conn.Bind.
func (b *Bind) BatchSize() int { return b.batch }

// ParseEndpoint implements conn.Bind.
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return &Endpoint{ap}, nil
}

// UDPEndpoint implements device.Bind.
func (b *Bind) UDPEndpoint(ap netip.AddrPort) conn.Endpoint {
	return &Endpoint{netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
}

// Send implements conn.Bind.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*Endpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	b.mu.Lock()
	from, open := b.self, b.open
	b.mu.Unlock()
	if !open {
		return net.ErrClosed
	}
	for _, buf := range bufs {
		b.net.deliver(from, e.AddrPort, buf)
	}
	b.Sent.Add(uint64(len(bufs)))
	return nil
}

// Inject delivers a datagram that claims to come from src (a forgery, for
// tests of what a node does with hostile input). It reports whether a bind
// at dst took it.
func (n *Network) Inject(src, dst netip.AddrPort, payload []byte) bool {
	return n.deliver(&Endpoint{src}, dst, payload)
}

func (n *Network) deliver(from *Endpoint, dst netip.AddrPort, payload []byte) bool {
	if f := n.filter.Load(); f != nil && !(*f)(from.AddrPort, dst, payload) {
		return false
	}
	n.mu.RLock()
	to := n.binds[dst]
	n.mu.RUnlock()
	if to == nil {
		return false
	}
	to.mu.Lock()
	rx, closed, open := to.rx, to.closed, to.open
	to.mu.Unlock()
	if !open {
		return false
	}
	d := datagram{from: from, n: len(payload)}
	if len(payload) <= 2048 {
		d.buf = n.pool.Get().(*[2048]byte)
		copy(d.buf[:], payload)
	} else {
		d.big = append([]byte(nil), payload...)
	}
	if n.blocking.Load() {
		select {
		case rx <- d:
			return true
		case <-closed:
		}
	} else {
		select {
		case rx <- d:
			return true
		case <-closed:
		default:
		}
	}
	if d.buf != nil {
		n.pool.Put(d.buf)
	}
	return false
}
