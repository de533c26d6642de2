package filter_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/faketun"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/memnet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/filter"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet/packettest"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// labNode is a data plane (device over an in-memory network and a fake
// TUN) with the filter wired in as the node wires it.
type labNode struct {
	name string
	ip   netip.Addr
	key  nodekey.PrivateKey
	ul   netip.AddrPort
	tun  *faketun.Device
	flt  *filter.Filter
	dev  *device.Device
}

// newLab starts n nodes that all know each other, each with a filter and
// no policy.
func newLab(t *testing.T, n int) []*labNode {
	t.Helper()
	net := memnet.New()
	net.SetBlocking(true)
	var psk [32]byte
	for i := range psk {
		psk[i] = 7
	}
	nodes := make([]*labNode, n)
	for i := range nodes {
		k, err := nodekey.FromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = &labNode{
			name: string(rune('a' + i)),
			ip:   netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)}),
			key:  k,
			ul:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 51820),
			flt:  filter.New(filter.Config{Self: netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)})}),
		}
	}
	for i, nd := range nodes {
		cfg := device.Config{PrivateKey: nd.key, PSK: psk, MeshID: "lab", ListenPort: nd.ul.Port(), Self: nd.ip,
			PersistentKeepalive: -1, Filter: nd.flt}
		for j, o := range nodes {
			if j != i {
				cfg.Peers = append(cfg.Peers, device.PeerConfig{Name: o.name, PublicKey: o.key.Public(), IP: o.ip, Endpoints: []device.Endpoint{device.UDPEndpoint(o.ul)}})
			}
		}
		nd.tun = faketun.New("lab"+nd.name, device.DefaultMTU, 16)
		dev, err := device.New(nd.tun, net.NewBind(nd.ul.Addr(), 16), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		nd.dev = dev
		t.Cleanup(func() { dev.Close() })
	}
	return nodes
}

func tcpPacket(src, dst netip.Addr, sport, dport uint16, flags byte) []byte {
	return packettest.IPv4(src, dst, packet.ProtoTCP, packettest.TCP(sport, dport, flags))
}

const (
	syn    = 0x02
	synAck = 0x12
	ack    = 0x10
)

// send injects packets into from's TUN (pacing so the queue never fills).
func (nd *labNode) send(t *testing.T, pkts ...[]byte) {
	t.Helper()
	for _, p := range pkts {
		for !nd.tun.Inject(p) {
			time.Sleep(time.Millisecond)
		}
	}
}

// received collects what reaches nd's TUN until it has been quiet for
// quiet, as "src:sport>dport" strings.
func (nd *labNode) received(quiet time.Duration) []string {
	var got []string
	for {
		select {
		case p := <-nd.tun.Outbound():
			if len(p) >= 24 && p[9] == 6 {
				got = append(got, fmt.Sprintf("%v:%d>%d", netip.AddrFrom4([4]byte(p[12:16])), binary.BigEndian.Uint16(p[20:]), binary.BigEndian.Uint16(p[22:])))
			}
		case <-time.After(quiet):
			return got
		}
	}
}

func expectOnly(t *testing.T, nd *labNode, want ...string) {
	t.Helper()
	got := nd.received(300 * time.Millisecond)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s received %v, want %v", nd.name, got, want)
	}
}

func allow(version uint64, name string, src netip.Addr, port uint16) *api.Filter {
	return &api.Filter{PolicyVersion: version, Rules: []api.FilterRule{{Name: name,
		Sources: []netip.Prefix{netip.PrefixFrom(src, 32)}, Protocol: "tcp", Ports: []api.PortRange{{First: port, Last: port}}}}}
}

// TestLab is the policy lab on the real data plane in process:
// with a policy allowing only A -> B tcp/80, a scan from A of B's other
// ports and from C of every port of B gets nothing through, while A's
// connection to B:80 and B's replies work; changing the policy opens and
// closes paths live.
func TestLab(t *testing.T) {
	nodes := newLab(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, nd := range nodes {
		if err := nd.flt.SetFilter(&api.Filter{PolicyVersion: 1, Rules: []api.FilterRule{}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.flt.SetFilter(allow(1, "a-http", a.ip, 80)); err != nil {
		t.Fatal(err)
	}
	if err := a.flt.SetFilter(allow(1, "b-https", b.ip, 443)); err != nil {
		t.Fatal(err)
	}

	// A scans B: only port 80 gets through.
	var scan [][]byte
	for port := uint16(1); port <= 1024; port++ {
		scan = append(scan, tcpPacket(a.ip, b.ip, 40000, port, syn))
	}
	a.send(t, scan...)
	expectOnly(t, b, "100.64.0.1:40000>80")

	// B answers A's SYN; the reply passes A's filter (A opened the flow)
	// although A's policy allows nothing from B's port 80.
	b.send(t, tcpPacket(b.ip, a.ip, 80, 40000, synAck))
	expectOnly(t, a, "100.64.0.2:80>40000")
	a.send(t, tcpPacket(a.ip, b.ip, 40000, 80, ack))
	expectOnly(t, b, "100.64.0.1:40000>80")

	// C scans every port of B: nothing. A first packet sets up C's session
	// with B, so no scan packet waits in C's pre-handshake queue (which
	// holds a bounded number and drops the rest).
	before := b.flt.Stats().Drops[filter.DropNoRule]
	c.send(t, tcpPacket(c.ip, b.ip, 41000, 1, syn))
	for deadline := time.Now().Add(20 * time.Second); b.flt.Stats().Drops[filter.DropNoRule] == before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("C's first packet never reached B's filter")
		}
	}
	// The scan goes in rounds of 256 packets, each sent once the round
	// before has met B's filter: the data plane's queues are bounded and
	// drop what does not fit, and on a busy machine a single burst of
	// 65,535 packets outruns B's reader.
	for first := 1; first <= 65535; first += 256 {
		last := min(first+255, 65535)
		scan = scan[:0]
		for port := first; port <= last; port++ {
			scan = append(scan, tcpPacket(c.ip, b.ip, 41000, uint16(port), syn))
		}
		was := b.flt.Stats().Drops[filter.DropNoRule]
		c.send(t, scan...)
		want := was + uint64(last-first+1)
		for deadline := time.Now().Add(60 * time.Second); b.flt.Stats().Drops[filter.DropNoRule] < want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("scan of ports %d-%d: B counted %d no-rule drops, want %d", first, last, b.flt.Stats().Drops[filter.DropNoRule], want)
			}
		}
	}
	// B opens nothing to A, and C cannot spoof A's flow.
	b.send(t, tcpPacket(b.ip, a.ip, 5555, 22, syn))
	c.send(t, tcpPacket(c.ip, a.ip, 80, 40000, ack))
	expectOnly(t, b)
	expectOnly(t, a)
	// The scan is still draining through B's data plane when B's TUN falls
	// quiet; wait for every packet to have met the filter.
	var drops uint64
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if drops = b.flt.Stats().Drops[filter.DropNoRule]; drops >= 65535+1023+1 {
			break
		}
	}
	if drops < 65535+1023+1 {
		t.Errorf("B counted %d no-rule drops, want at least %d", drops, 65535+1023+1)
	}

	// The policy changes: C may reach B:22, A loses B:80. A's established
	// connection stops at once; C's new one works.
	if err := b.flt.SetFilter(allow(2, "c-ssh", c.ip, 22)); err != nil {
		t.Fatal(err)
	}
	a.send(t, tcpPacket(a.ip, b.ip, 40000, 80, ack))
	c.send(t, tcpPacket(c.ip, b.ip, 41000, 22, syn))
	expectOnly(t, b, "100.64.0.3:41000>22")

	// B's own connection to A (A allows B on 443) survives B's policy
	// changing to allow nothing from A.
	b.send(t, tcpPacket(b.ip, a.ip, 6000, 443, syn))
	expectOnly(t, a, "100.64.0.2:6000>443")
	if err := b.flt.SetFilter(allow(3, "none", netip.MustParseAddr("100.64.9.9"), 1)); err != nil {
		t.Fatal(err)
	}
	a.send(t, tcpPacket(a.ip, b.ip, 443, 6000, synAck))
	expectOnly(t, b, "100.64.0.1:443>6000")
}
