package transport

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/stunclient"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Sender carries packets of one non-UDP transport to peers by key.
type Sender interface {
	// Send sends one tunnel datagram to dst; it must not block.
	Send(dst nodekey.PublicKey, pkt []byte) error
	// Ready reports whether Send to dst can succeed now.
	Ready(dst nodekey.PublicKey) bool
	// PathName names the path to dst for status ("relay coord-1").
	PathName(dst nodekey.PublicKey) string
}

// ErrNoSender is returned by Send for a transport with no Sender set.
var ErrNoSender = errors.New("transport: no sender for this path kind")

// inQueueLen bounds the packets from SSH and relays waiting for the device.
const inQueueLen = 1024

// Endpoint is a peer's endpoint on the SSH transport or a relay. It is
// comparable by pointer: the bind hands out one per (kind, key), and one
// per packet-port connection (pp set, key zero: see packetPortEndpoint).
type Endpoint struct {
	b    *Bind
	kind device.PathKind
	key  nodekey.PublicKey
	str  string
	pp   *ppConn
}

var _ device.PathEndpoint = (*Endpoint)(nil)

func (e *Endpoint) ClearSrc()           {}
func (e *Endpoint) SrcToString() string { return "" }
func (e *Endpoint) DstToString() string { return e.str }
func (e *Endpoint) DstToBytes() []byte {
	if e.pp != nil {
		return []byte(e.str)
	}
	return e.key[:]
}
func (e *Endpoint) DstIP() netip.Addr         { return netip.Addr{} }
func (e *Endpoint) SrcIP() netip.Addr         { return netip.Addr{} }
func (e *Endpoint) PathKind() device.PathKind { return e.kind }

// Key returns the peer's node key (for a packet-port connection, the key
// its packets authenticated as, zero before the first).
func (e *Endpoint) Key() nodekey.PublicKey {
	if e.pp != nil {
		if k := e.pp.peer.Load(); k != nil {
			return *k
		}
	}
	return e.key
}

// Path implements device.PathEndpoint.
func (e *Endpoint) Path() string {
	if e.pp != nil {
		return e.pp.path(e)
	}
	if s := e.b.sender(e.kind); s != nil {
		return s.PathName(e.key)
	}
	return e.kind.String()
}

// Ready implements device.PathEndpoint.
func (e *Endpoint) Ready() bool {
	if e.pp != nil {
		return e.pp.ready(e)
	}
	s := e.b.sender(e.kind)
	return s != nil && s.Ready(e.key)
}

// endpointString is what DstToString says of a peer's endpoint of kind:
// "ssh:<key hex>", "relay:<key hex>". Nothing parses it.
func endpointString(kind device.PathKind, key nodekey.PublicKey) string {
	return kind.String() + ":" + hex.EncodeToString(key[:])
}

type inPacket struct {
	ep  *Endpoint
	buf []byte
}

type senderBox struct{ s Sender }

type epKey struct {
	kind device.PathKind
	key  nodekey.PublicKey
}

// Bind is a conn.Bind over UDP (the inner bind), SSH and relays.
type Bind struct {
	udp     device.Bind
	senders [device.PathUDP]atomic.Pointer[senderBox]

	stunMu   sync.Mutex // guards stunWait
	stunWait map[stunclient.TxID]chan netip.AddrPort

	epMu sync.RWMutex // guards eps
	eps  map[epKey]*Endpoint

	mu     sync.Mutex // guards the fields below
	in     chan *inPacket
	closed chan struct{}

	pool sync.Pool // *inPacket

	// Dropped counts packets from SSH or relays dropped because the
	// device fell behind.
	Dropped atomic.Uint64
	// STUNPackets counts STUN answers taken off the UDP socket.
	STUNPackets atomic.Uint64
}

var _ device.KeyedBind = (*Bind)(nil)

// NewBind returns a bind that sends UDP through udp.
func NewBind(udp device.Bind) *Bind {
	b := &Bind{udp: udp, eps: make(map[epKey]*Endpoint), closed: make(chan struct{})}
	close(b.closed) // not open yet
	b.pool.New = func() any { return &inPacket{buf: make([]byte, 0, 2048)} }
	return b
}

// SetSender sets the Sender of kind (device.PathSSH or device.PathRelay).
func (b *Bind) SetSender(kind device.PathKind, s Sender) {
	if kind == device.PathNone || kind >= device.PathUDP {
		panic(fmt.Sprintf("transport: SetSender of kind %v", kind))
	}
	b.senders[kind].Store(&senderBox{s})
}

func (b *Bind) sender(kind device.PathKind) Sender {
	if kind >= device.PathUDP {
		return nil
	}
	if box := b.senders[kind].Load(); box != nil {
		return box.s
	}
	return nil
}

// endpoint returns the endpoint for (kind, key), creating it once.
func (b *Bind) endpoint(kind device.PathKind, key nodekey.PublicKey) *Endpoint {
	k := epKey{kind, key}
	b.epMu.RLock()
	ep := b.eps[k]
	b.epMu.RUnlock()
	if ep != nil {
		return ep
	}
	b.epMu.Lock()
	defer b.epMu.Unlock()
	if ep = b.eps[k]; ep == nil {
		ep = &Endpoint{b: b, kind: kind, key: key, str: endpointString(kind, key)}
		b.eps[k] = ep
	}
	return ep
}

// Deliver hands the device a datagram that arrived from src over kind
// (device.PathSSH or device.PathRelay). It copies pkt and never blocks: a
// packet the device has no room for is dropped (Dropped).
func (b *Bind) Deliver(kind device.PathKind, src nodekey.PublicKey, pkt []byte) {
	b.deliver(b.endpoint(kind, src), pkt)
}

func (b *Bind) deliver(ep *Endpoint, pkt []byte) {
	b.mu.Lock()
	in, closed := b.in, b.closed
	b.mu.Unlock()
	select {
	case <-closed:
		return
	default:
	}
	ip := b.pool.Get().(*inPacket)
	ip.ep = ep
	ip.buf = append(ip.buf[:0], pkt...)
	select {
	case in <- ip:
	default:
		b.Dropped.Add(1)
		b.put(ip)
	}
}

func (b *Bind) put(ip *inPacket) {
	ip.ep = nil
	if cap(ip.buf) > 1<<16 {
		ip.buf = make([]byte, 0, 2048)
	}
	b.pool.Put(ip)
}

// Open implements conn.Bind: the inner bind's receive functions (with STUN
// answers taken out) plus one for the SSH and relay packets.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.udp.Open(port)
	if err != nil {
		return nil, 0, err
	}
	in, closed := make(chan *inPacket, inQueueLen), make(chan struct{})
	b.mu.Lock()
	b.in, b.closed = in, closed
	b.mu.Unlock()
	out := make([]conn.ReceiveFunc, 0, len(fns)+1)
	for _, fn := range fns {
		out = append(out, b.stunFilter(fn))
	}
	out = append(out, b.receiveOther(in, closed))
	return out, actual, nil
}

func (b *Bind) stunFilter(fn conn.ReceiveFunc) conn.ReceiveFunc {
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := fn(bufs, sizes, eps)
		for i := 0; i < n; i++ {
			if pkt := bufs[i][:sizes[i]]; IsSTUNResponse(pkt) {
				b.STUNPackets.Add(1)
				b.stunAnswer(pkt)
				sizes[i] = 0
			}
		}
		return n, err
	}
}

// IsSTUNResponse reports whether pkt is a STUN binding success response
// (RFC 5389: type 0x0101, magic cookie 0x2112A442). No tunnel message
// matches: their second byte is zero.
func IsSTUNResponse(pkt []byte) bool {
	return len(pkt) >= 20 && pkt[0] == 0x01 && pkt[1] == 0x01 &&
		binary.BigEndian.Uint32(pkt[4:8]) == 0x2112A442
}

func (b *Bind) receiveOther(in chan *inPacket, closed chan struct{}) conn.ReceiveFunc {
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		var ip *inPacket
		select {
		case ip = <-in:
		case <-closed:
			return 0, net.ErrClosed
		}
		n := 0
		for {
			if len(ip.buf) <= len(bufs[n]) {
				sizes[n] = copy(bufs[n], ip.buf)
				eps[n] = ip.ep
				n++
			} else {
				b.Dropped.Add(1)
			}
			b.put(ip)
			if n == len(bufs) {
				return n, nil
			}
			select {
			case ip = <-in:
			default:
				return n, nil
			}
		}
	}
}

// Close implements conn.Bind.
func (b *Bind) Close() error {
	b.mu.Lock()
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	b.mu.Unlock()
	return b.udp.Close()
}

// SetMark implements conn.Bind.
func (b *Bind) SetMark(m uint32) error { return b.udp.SetMark(m) }

// BatchSize implements conn.Bind.
func (b *Bind) BatchSize() int { return b.udp.BatchSize() }

// ParseEndpoint implements conn.Bind: a UDP address for the inner bind.
// The device makes its endpoints with UDPEndpoint and KeyEndpoint; SSH and
// relay endpoints have no string form to parse.
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) { return b.udp.ParseEndpoint(s) }

// UDPEndpoint implements device.Bind: the inner bind's endpoint.
func (b *Bind) UDPEndpoint(ap netip.AddrPort) conn.Endpoint { return b.udp.UDPEndpoint(ap) }

// KeyEndpoint implements device.KeyedBind: the one endpoint of the peer
// with key on kind (device.PathSSH or device.PathRelay).
func (b *Bind) KeyEndpoint(kind device.PathKind, key nodekey.PublicKey) (conn.Endpoint, error) {
	if kind != device.PathSSH && kind != device.PathRelay {
		return nil, fmt.Errorf("%w: %s", device.ErrEndpointKind, kind)
	}
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("%s endpoint: %w", kind, err)
	}
	return b.endpoint(kind, key), nil
}

// Send implements conn.Bind.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*Endpoint)
	if !ok {
		return b.udp.Send(bufs, ep)
	}
	if e.pp != nil {
		return e.pp.send(e, bufs)
	}
	s := b.sender(e.kind)
	if s == nil {
		return ErrNoSender
	}
	var first error
	for _, buf := range bufs {
		if err := s.Send(e.key, buf); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// SendUDP sends one datagram to dst on the data plane's UDP socket (STUN
// requests).
func (b *Bind) SendUDP(pkt []byte, dst netip.AddrPort) error {
	return b.udp.Send([][]byte{pkt}, b.udp.UDPEndpoint(dst))
}
