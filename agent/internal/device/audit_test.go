package device

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// sendRaw sends pkt from a to b through a's session with b, whatever its
// addresses: what a peer running modified software can do.
func sendRaw(a, b *node, pkt []byte) {
	d := a.dev
	p := d.peerFor(b)
	e := d.pools.getElem()
	n := copy(e.buf[wire.TransportHeaderSize:], pkt)
	e.packet = e.buf[wire.TransportHeaderSize : wire.TransportHeaderSize+n]
	bt := d.pools.getBatch(p)
	bt.elems = append(bt.elems, e)
	p.stage(bt)
	p.sendStaged()
}

// ipv6UDP is an IPv6 UDP packet from src to dst.
func ipv6UDP(src, dst netip.Addr, payload string) []byte {
	b := make([]byte, 40+8+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	b[6] = 17
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	binary.BigEndian.PutUint16(b[40:], 1000)
	binary.BigEndian.PutUint16(b[42:], 2000)
	binary.BigEndian.PutUint16(b[44:], uint16(8+len(payload)))
	copy(b[48:], payload)
	return b
}

// An IPv6 packet whose source is the IPv4-mapped form of the sending
// peer's mesh IP (::ffff:100.64.0.1) is not from that IP: only IPv4 with
// the peer's exact address passes the allowed-IPs check, as in WireGuard,
// whose allowed IPs keep IPv4 and IPv6 in separate tables.
func TestAllowedIPsMappedIPv6(t *testing.T) {
	m := newMesh(t, 2, fastTiming())
	a, b := m.nodes[0], m.nodes[1]
	roundTrip(t, a, b, "establish")
	mapped := netip.AddrFrom16(a.ip.As16())
	if !mapped.Is4In6() {
		t.Fatalf("%v is not IPv4-mapped", mapped)
	}
	sendRaw(a, b, ipv6UDP(mapped, netip.AddrFrom16(b.ip.As16()), "mapped source"))
	waitFor(t, "allowed_ips drop", 5*time.Second, func() bool { return drops(b, DropAllowedIPs) == 1 })
	expectNone(t, b, 100*time.Millisecond)
	// The same way, a packet from a's own IPv4 address arrives: the
	// test sends what it means to.
	p := udpPacket(a, b, "v4 source")
	sendRaw(a, b, p)
	expect(t, b, p, 5*time.Second)
}

// A ping completes only with a reply from the pinged peer's session: a
// reply another peer sends, with the right identifier and sequence number,
// does not count.
func TestPingReplyFromOtherPeer(t *testing.T) {
	m := newMesh(t, 3, fastTiming())
	a, b, c := m.nodes[0], m.nodes[1], m.nodes[2]
	roundTrip(t, a, b, "session a-b")
	roundTrip(t, c, a, "session c-a")
	// b is gone: only a forged reply can answer.
	b.dev.Close()
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	seq := uint16(a.dev.ping.seq.Load() + 1)
	go func() {
		_, _, err := a.dev.Ping(ctx, b.ip)
		done <- err
	}()
	waitFor(t, "a's ping to be pending", 2*time.Second, func() bool {
		a.dev.ping.mu.Lock()
		defer a.dev.ping.mu.Unlock()
		return len(a.dev.ping.waiters) == 1
	})
	// c forges b's reply: from c's own address (its session allows no
	// other), and from b's address (dropped as allowed_ips).
	var reply [64]byte
	for _, src := range []netip.Addr{c.ip, b.ip} {
		n := putICMPEcho(reply[:], packet.ICMPEchoReply, src, a.ip, a.dev.ping.id, seq, time.Now().UnixNano())
		sendRaw(c, a, reply[:n])
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a reply from c completed a's ping of b")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Ping = %v, want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ping did not return")
	}
}
