// Package faketun is an in-memory tun.Device (golang.zx2c4.com/wireguard/tun)
// for tests: the test injects packets the "kernel" would route into the
// tunnel and receives the packets the device writes. It can answer ICMP echo
// requests itself, as a kernel would.
package faketun

import (
	"encoding/binary"
	"net/netip"
	"os"
	"sync"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet/packettest"
)

// Device is a fake TUN. All methods are safe for concurrent use; after Close,
// Read returns os.ErrClosed and the Events channel is closed.
type Device struct {
	name  string
	mtu   int
	batch int

	in        chan []byte
	out       chan []byte
	events    chan tun.Event
	closed    chan struct{}
	closeOnce sync.Once

	// AnswerPings makes the device answer IPv4 ICMP echo requests written to
	// it by injecting the reply, like the kernel does for a local address.
	AnswerPings bool
	// Sink, if set, receives every written packet instead of the Outbound
	// channel (the slice is only valid during the call).
	Sink func(pkt []byte)
}

// New returns a fake TUN with the given MTU and batch size.
func New(name string, mtu, batch int) *Device {
	d := &Device{
		name: name, mtu: mtu, batch: batch,
		in:     make(chan []byte, 4096),
		out:    make(chan []byte, 4096),
		events: make(chan tun.Event, 1),
		closed: make(chan struct{}),
	}
	d.events <- tun.EventUp
	return d
}

// Inject queues pkt (copied) to be read by the device. It reports false if
// the device is closed or the queue is full.
func (d *Device) Inject(pkt []byte) bool {
	select {
	case <-d.closed:
		return false
	default:
	}
	select {
	case d.in <- append([]byte(nil), pkt...):
		return true
	default:
		return false
	}
}

// InjectShared queues pkt without copying it; the caller must not modify
// pkt afterwards. It blocks while the queue is full (for benchmarks).
func (d *Device) InjectShared(pkt []byte) bool {
	select {
	case d.in <- pkt:
		return true
	case <-d.closed:
		return false
	}
}

// Outbound delivers the packets the device wrote (copies).
func (d *Device) Outbound() <-chan []byte { return d.out }

func (d *Device) File() *os.File           { return nil }
func (d *Device) MTU() (int, error)        { return d.mtu, nil }
func (d *Device) Name() (string, error)    { return d.name, nil }
func (d *Device) Events() <-chan tun.Event { return d.events }
func (d *Device) BatchSize() int           { return d.batch }

func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var p []byte
	select {
	case p = <-d.in:
	case <-d.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], p)
		n++
		if n == len(bufs) || n == d.batch {
			return n, nil
		}
		select {
		case p = <-d.in:
		default:
			return n, nil
		}
	}
}

func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	default:
	}
	for _, b := range bufs {
		pkt := b[offset:]
		if d.AnswerPings {
			if r, ok := echoReply(pkt); ok {
				d.Inject(r)
				continue
			}
		}
		if d.Sink != nil {
			d.Sink(pkt)
			continue
		}
		select {
		case d.out <- append([]byte(nil), pkt...):
		case <-d.closed:
			return 0, os.ErrClosed
		}
	}
	return len(bufs), nil
}

func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		close(d.closed)
		close(d.events)
	})
	return nil
}

// echoReply returns the reply to pkt if it is an IPv4 echo request.
func echoReply(pkt []byte) ([]byte, bool) {
	var p packet.Parsed
	if !p.Parse(pkt) || p.Version != 4 || !p.HasICMP || p.Proto != packet.ProtoICMP || p.ICMPType != packet.ICMPEchoRequest {
		return nil, false
	}
	r := append([]byte(nil), p.Buf...)
	copy(r[12:16], pkt[16:20])
	copy(r[16:20], pkt[12:16])
	m := r[p.L4:]
	m[0] = packet.ICMPEchoReply
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], packet.Checksum(m, 0))
	packet.PutIPv4HeaderChecksum(r)
	return r, true
}

// UDPPacket builds an IPv4/UDP packet from src to dst carrying payload (for
// tests).
func UDPPacket(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	return packettest.IPv4(netip.AddrFrom4(src), netip.AddrFrom4(dst), packet.ProtoUDP, packettest.UDP(sport, dport, payload))
}
