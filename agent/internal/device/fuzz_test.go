package device

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/memnet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/wire"
)

// FuzzReceivedPacket feeds arbitrary plaintexts to what the receive path
// does with them: the parse and the ping check. Nothing may panic.
func FuzzReceivedPacket(f *testing.F) {
	f.Add(udpPacket(&node{ip: netip.MustParseAddr("100.64.0.1")}, &node{ip: netip.MustParseAddr("100.64.0.2")}, "x"))
	f.Add(make([]byte, 40))
	f.Add([]byte{0x60, 0, 0, 0, 0, 8})
	f.Fuzz(func(t *testing.T, b []byte) {
		var pp packet.Parsed
		if pp.Parse(b) && (len(pp.Buf) > len(b) || !pp.Src.IsValid() || !pp.Dst.IsValid()) {
			t.Fatalf("Parse(%x) = %+v", b, pp)
		}
		var pg pinger
		pg.init()
		_ = pg.intercept(&pp, nil, netip.MustParseAddr("100.64.0.1"))
	})
}

// FuzzHandshakeMessage feeds arbitrary datagrams to a live device's
// handshake handler: nothing may panic, and no session may appear.
func FuzzHandshakeMessage(f *testing.F) {
	f.Add([]byte{wire.TypeInitiation, wire.Version, 0, 0})
	f.Add(make([]byte, wire.InitiationSize))
	f.Add(make([]byte, wire.ResponseSize))
	f.Add(make([]byte, wire.CookieReplySize))
	init := (&wire.Initiation{Sender: 1}).MarshalTo(make([]byte, wire.InitiationSize))
	f.Add(init)
	m := newMesh(f, 2, fastTiming())
	d := m.nodes[0].dev
	ep := &memnet.Endpoint{AddrPort: netip.MustParseAddrPort("203.0.113.1:1")}
	f.Fuzz(func(t *testing.T, b []byte) {
		d.handleHandshakeMessage(b, ep, time.Now())
		if d.Counters().HandshakesCompleted != 0 {
			t.Fatalf("datagram %x established a session", b)
		}
	})
}
