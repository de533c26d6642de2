package device

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// ErrNoPeer is returned by Ping for an address that is no peer's mesh IP.
var ErrNoPeer = errors.New("no peer with that mesh IP")

// pinger matches ICMP echo replies to Ping calls. Replies carrying this
// device's echo identifier are consumed and never reach the TUN; one
// completes a Ping only when it came through the session of the peer that
// was pinged.
type pinger struct {
	id      uint16
	seq     atomic.Uint32
	mu      sync.Mutex // guards waiters
	waiters map[uint16]pingWaiter
}

// pingWaiter is a Ping waiting for the reply to its sequence number from
// peer.
type pingWaiter struct {
	peer *peer
	ch   chan struct{}
}

func (pg *pinger) init() {
	var b [2]byte
	_, _ = rand.Read(b[:])
	pg.id = binary.BigEndian.Uint16(b[:])
	pg.waiters = make(map[uint16]pingWaiter)
}

// intercept reports whether pp, a packet that came from peer from, is a
// reply to one of our pings, and wakes the caller if it still waits and
// pinged from. It does not allocate.
func (pg *pinger) intercept(pp *packet.Parsed, from *peer, self netip.Addr) bool {
	if pp.Version != 4 || pp.Proto != packet.ProtoICMP || !pp.HasICMP ||
		pp.ICMPType != packet.ICMPEchoReply || pp.SrcPort != pg.id || pp.Dst != self {
		return false
	}
	seq := pp.EchoSeq
	pg.mu.Lock()
	w := pg.waiters[seq]
	pg.mu.Unlock()
	if w.ch != nil && w.peer == from {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	return true
}

// Ping sends an ICMP echo request from Config.Self to the peer with mesh IP
// ip through its tunnel and waits for the reply, which is caught before it
// reaches the TUN. It returns the round-trip time and the path that carried
// it (see PeerStatus.Path). IPv4 only.
func (d *Device) Ping(ctx context.Context, ip netip.Addr) (time.Duration, string, error) {
	if d.isClosed() {
		return 0, "", fmt.Errorf("ping %s: %w", ip, ErrClosed)
	}
	ip = ip.Unmap()
	self := d.self()
	if !ip.Is4() || !self.Is4() {
		return 0, "", fmt.Errorf("ping %s: only IPv4 mesh addresses are supported", ip)
	}
	p := d.peerByIP(ip)
	if p == nil {
		return 0, "", fmt.Errorf("ping %s: %w", ip, ErrNoPeer)
	}
	seq := uint16(d.ping.seq.Add(1))
	ch := make(chan struct{}, 1)
	d.ping.mu.Lock()
	d.ping.waiters[seq] = pingWaiter{peer: p, ch: ch}
	d.ping.mu.Unlock()
	defer func() {
		d.ping.mu.Lock()
		delete(d.ping.waiters, seq)
		d.ping.mu.Unlock()
	}()

	start := time.Now()
	e := d.pools.getElem()
	n := putICMPEcho(e.buf[wire.TransportHeaderSize:], packet.ICMPEchoRequest, self, ip, d.ping.id, seq, start.UnixNano())
	e.packet = e.buf[wire.TransportHeaderSize : wire.TransportHeaderSize+n]
	b := d.pools.getBatch(p)
	b.elems = append(b.elems, e)
	p.stage(b)
	p.sendStaged()

	select {
	case <-ch:
		rtt := time.Since(start)
		p.rtt.Store(int64(rtt))
		return rtt, p.path(), nil
	case <-ctx.Done():
		return 0, "", fmt.Errorf("ping %s: %w", ip, ctx.Err())
	case <-d.closing:
		return 0, "", fmt.Errorf("ping %s: %w", ip, ErrClosed)
	}
}

// putICMPEcho writes an IPv4 ICMP echo message of the given type into b and
// returns its length. The payload is 16 bytes: 8 of them carry nanos.
func putICMPEcho(b []byte, typ uint8, src, dst netip.Addr, id, seq uint16, nanos int64) int {
	const total = packet.IPv4HeaderLen + packet.ICMPHeaderLen + 16
	clear(b[:total])
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], total)
	b[8] = 64 // TTL
	b[9] = packet.ProtoICMP
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	packet.PutIPv4HeaderChecksum(b)
	icmp := b[packet.IPv4HeaderLen:total]
	icmp[0] = typ
	binary.BigEndian.PutUint16(icmp[4:], id)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	binary.BigEndian.PutUint64(icmp[8:], uint64(nanos))
	binary.BigEndian.PutUint16(icmp[2:], packet.Checksum(icmp, 0))
	return total
}
