package transport

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/faketun"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/memnet"
	"github.com/tunnelmesh/tunnelmesh/relay/server"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	sshserver "github.com/tunnelmesh/tunnelmesh/sshgw/server"
)

// lab is two nodes on a memnet (UDP can be cut with udpBlocked), both on a
// real relay server (ws:// on loopback), optionally with node 1 accepting
// the SSH transport (a real sshgw server on loopback).
type lab struct {
	t          *testing.T
	net        *memnet.Network
	udpBlocked atomic.Bool
	// udpOneWay drops UDP from node 0 only (node 1's packets still arrive).
	udpOneWay atomic.Bool
	relayURL  string
	nodes     [2]*labNode
}

type labNode struct {
	key    nodekey.PrivateKey
	ip     netip.Addr
	ul     netip.AddrPort
	bind   *Bind
	relays *Relays
	ssh    *SSH
	srv    *sshserver.Server
	pp     *PacketPort
	gw     *sshserver.Server // standalone sshgw forwarding to pp
	sshAt  netip.AddrPort
	dev    *device.Device
}

func logger(t *testing.T, name string) *slog.Logger {
	if testing.Verbose() && os.Getenv("TM_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	return slog.New(slog.DiscardHandler)
}

// SSH transport setups of node 1 in the lab.
const (
	sshNone    = iota
	sshInAgent // the agent's own sshgw server
	sshGateway // a standalone sshgw server forwarding to node 1's packet port
)

func newLab(t *testing.T, withSSH bool) *lab {
	t.Helper()
	if withSSH {
		return newLabMode(t, sshInAgent)
	}
	return newLabMode(t, sshNone)
}

func newLabMode(t *testing.T, mode int) *lab {
	t.Helper()
	checkGoroutines(t)
	l := &lab{t: t, net: memnet.New()}
	l.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		if l.udpOneWay.Load() && src.Addr() == netip.AddrFrom4([4]byte{192, 0, 2, 1}) {
			return false
		}
		return !l.udpBlocked.Load()
	})
	rs, err := server.New(server.Config{ID: "test-relay", Logger: logger(t, "relay")})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(rs)
	t.Cleanup(func() { hs.Close(); rs.Close() })
	l.relayURL = "ws" + strings.TrimPrefix(hs.URL, "http")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 8)
	runs := 0
	for i := range l.nodes {
		seed := bytes.Repeat([]byte{byte(i + 7)}, 32)
		k, err := nodekey.FromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		n := &labNode{key: k, ip: netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)}),
			ul: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 51820)}
		n.bind = NewBind(l.net.NewBind(n.ul.Addr(), 16))
		n.relays = NewRelays(RelaysConfig{Key: k, Bind: n.bind, Logger: logger(t, "relays")})
		n.bind.SetSender(device.PathRelay, n.relays)
		if mode == sshInAgent && i == 1 {
			n.srv, err = sshserver.New(sshserver.Config{HostKey: k, OnPacket: ServerOnPacket(n.bind), Logger: logger(t, "sshd")})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			n.sshAt = ln.Addr().(*net.TCPAddr).AddrPort()
			go n.srv.Serve(ln)
			t.Cleanup(func() { n.srv.Close() })
		}
		n.ssh = NewSSH(SSHConfig{Key: k, Bind: n.bind, Server: n.srv, Logger: logger(t, "ssh")})
		n.bind.SetSender(device.PathSSH, n.ssh)
		if mode == sshGateway && i == 1 {
			n.pp, err = ListenPacketPort("127.0.0.1:0", n.bind, n.ssh, logger(t, "packetport"))
			if err != nil {
				t.Fatal(err)
			}
			runs++
			go func() { n.pp.Listener().Serve(ctx); done <- struct{}{} }()
			n.gw, err = sshserver.New(sshserver.Config{HostKey: k, ForwardTo: n.pp.Addr().String(), Logger: logger(t, "sshgw")})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			n.sshAt = ln.Addr().(*net.TCPAddr).AddrPort()
			go n.gw.Serve(ln)
			t.Cleanup(func() { n.gw.Close() })
		}
		for _, r := range []interface{ Run(context.Context) error }{n.relays, n.ssh} {
			runs++
			go func() { r.Run(ctx); done <- struct{}{} }()
		}
		l.nodes[i] = n
	}
	t.Cleanup(func() {
		cancel()
		for range runs {
			<-done
		}
	})
	for i, n := range l.nodes {
		o := l.nodes[1-i]
		n.relays.Set([]api.Relay{{ID: "test-relay", URL: l.relayURL}}, "test-relay",
			map[nodekey.PublicKey]string{o.key.Public(): "test-relay"})
		for _, srv := range []*sshserver.Server{n.srv, n.gw} {
			if srv != nil {
				srv.SetAllowed([]nodekey.PublicKey{o.key.Public()})
			}
		}
		if o.sshAt.IsValid() {
			n.ssh.Set(map[nodekey.PublicKey]SSHPeer{o.key.Public(): {Addr: o.sshAt}})
		}
	}
	for i, n := range l.nodes {
		o := l.nodes[1-i]
		eps := []device.Endpoint{device.UDPEndpoint(o.ul)}
		if o.sshAt.IsValid() || n.srv != nil || n.pp != nil {
			eps = append(eps, device.SSHEndpoint(o.key.Public()))
		}
		eps = append(eps, device.RelayEndpoint(o.key.Public()))
		psk := [32]byte{1, 2, 3}
		cfg := device.Config{PrivateKey: n.key, PSK: psk, MeshID: "m", ListenPort: n.ul.Port(), Self: n.ip,
			Peers: []device.PeerConfig{{Name: fmt.Sprintf("n%d", 1-i), PublicKey: o.key.Public(), IP: o.ip,
				Endpoints: eps}}}
		tn := faketun.New(fmt.Sprintf("tm%d", i), device.DefaultMTU, 16)
		tn.AnswerPings = true
		dev, err := device.New(tn, n.bind, cfg, logger(t, fmt.Sprintf("n%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		n.dev = dev
		t.Cleanup(func() { dev.Close() })
	}
	return l
}

// Ceilings of the waits below: generous, so that a busy machine (other
// builds sharing two CPUs) slows the tests down without failing them. They
// bound waits for events, they do not assert how long anything takes (the
// tests log that).
const (
	// eventCeiling bounds a wait for a connection to come up or go away.
	eventCeiling = time.Minute
	// pathCeiling bounds a wait for the path to settle on a transport: it
	// takes probe rounds and backoff timers, seconds each when idle.
	pathCeiling = 3 * time.Minute
	// pingTimeout bounds one ping on a path that works.
	pingTimeout = 10 * time.Second
)

// waitRelays waits until both nodes are on the relay.
func (l *lab) waitRelays() {
	l.t.Helper()
	deadline := time.Now().Add(eventCeiling)
	for !(l.nodes[0].relays.HomeConnected() && l.nodes[1].relays.HomeConnected()) {
		if time.Now().After(deadline) {
			l.t.Fatal("relay connections did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pingUntil pings node 1 from node 0 until the answer comes on a path
// starting with want (for up to pathCeiling), and returns how long that
// took.
func (l *lab) pingUntil(want string) time.Duration {
	l.t.Helper()
	start := time.Now()
	var last string
	var lastErr error
	for time.Since(start) < pathCeiling {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, path, err := l.nodes[0].dev.Ping(ctx, l.nodes[1].ip)
		cancel()
		last, lastErr = path, err
		if err == nil && strings.HasPrefix(path, want) {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("no ping answered on a %q path within %v; last path %q, err %v; status %+v", want, pathCeiling, last, lastErr, l.nodes[0].dev.Status().Peers)
	return 0
}

// waitPeerPath waits (up to eventCeiling) until node i's path to its peer
// satisfies ok: node 1 moves its path when node 0's packets arrive on the
// new one, which can be a moment after node 0 got its answer.
func (l *lab) waitPeerPath(i int, want string, ok func(string) bool) {
	l.t.Helper()
	deadline := time.Now().Add(eventCeiling)
	for {
		p := l.peerPath(i)
		if ok(p) {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("node %d path = %q, want %s", i, p, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func is(want string) func(string) bool { return func(p string) bool { return p == want } }

func hasPrefix(prefix string) func(string) bool {
	return func(p string) bool { return strings.HasPrefix(p, prefix) }
}

func (l *lab) peerPath(i int) string {
	ps := l.nodes[i].dev.Status().Peers
	if len(ps) != 1 {
		l.t.Fatalf("node %d: %d peers", i, len(ps))
	}
	return ps[0].Path
}

func TestRelayFirstThenDirect(t *testing.T) {
	l := newLab(t, false)
	l.udpBlocked.Store(true)
	l.waitRelays()
	took := l.pingUntil("relay test-relay")
	t.Logf("first ping over the relay after %v", took)
	l.waitPeerPath(1, "relay test-relay", is("relay test-relay"))
	l.udpBlocked.Store(false)
	took = l.pingUntil("udp ")
	t.Logf("upgraded to direct UDP after %v", took)
	l.waitPeerPath(1, "udp "+l.nodes[0].ul.String(), is("udp "+l.nodes[0].ul.String()))
}

func TestDirectFallsBackToRelay(t *testing.T) {
	l := newLab(t, false)
	l.waitRelays()
	took := l.pingUntil("udp ")
	t.Logf("direct UDP after %v", took)
	hs := l.nodes[0].dev.Status().Peers[0].LastHandshake
	l.udpBlocked.Store(true)
	took = l.pingUntil("relay test-relay")
	t.Logf("fell back to the relay after %v", took)
	if got := l.nodes[0].dev.Status().Peers[0].LastHandshake; !got.Equal(hs) {
		t.Errorf("a new handshake happened during the fallback (%v, was %v): the session should survive", got, hs)
	}
	// And back up when UDP returns.
	l.udpBlocked.Store(false)
	took = l.pingUntil("udp ")
	t.Logf("back on direct UDP after %v", took)
}

// TestOneWayUDPSettlesOnRelay: when only node 1's UDP still gets through,
// both nodes move to the relay and stay there: node 0 keeps receiving
// node 1's UDP for a while, but a path given up comes back only by a
// probe round trip, which cannot happen one way.
func TestOneWayUDPSettlesOnRelay(t *testing.T) {
	l := newLab(t, false)
	l.waitRelays()
	l.pingUntil("udp ")
	l.udpOneWay.Store(true)
	took := l.pingUntil("relay test-relay")
	t.Logf("one-way UDP: on the relay after %v", took)
	for i := 0; i < 30; i++ {
		if p := l.peerPath(0); p != "relay test-relay" {
			t.Fatalf("node 0 left the relay for %q while UDP works one way only", p)
		}
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		_, _, err := l.nodes[0].dev.Ping(ctx, l.nodes[1].ip)
		cancel()
		if err != nil {
			t.Fatalf("ping on the relay: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.udpOneWay.Store(false)
	took = l.pingUntil("udp ")
	t.Logf("both ways again: back on UDP after %v", took)
}

func TestSSHWhenUDPBlocked(t *testing.T) {
	l := newLab(t, true)
	l.udpBlocked.Store(true)
	l.waitRelays()
	took := l.pingUntil("ssh ")
	t.Logf("on the SSH transport after %v", took)
	l.waitPeerPath(1, "ssh", hasPrefix("ssh"))
	l.udpBlocked.Store(false)
	took = l.pingUntil("udp ")
	t.Logf("upgraded from SSH to UDP after %v", took)
}

// TestSSHThroughPacketPort: node 1 has no SSH server of its own but a
// packet port, and a standalone sshgw (host key = node 1's key) forwards
// node 0's channel there. With UDP blocked both settle on SSH: node 0 on
// its connection, node 1 answering on the packet-port connection. When the
// packet-port connections are cut, node 0's dialer reconnects and node 1
// binds the new connection to node 0 again.
func TestSSHThroughPacketPort(t *testing.T) {
	l := newLabMode(t, sshGateway)
	l.udpBlocked.Store(true)
	l.waitRelays()
	took := l.pingUntil("ssh ")
	t.Logf("on SSH through the packet port after %v", took)
	l.waitPeerPath(1, "ssh in", is("ssh in"))
	pp := l.nodes[1].pp
	conns := pp.Listener().Conns()
	if len(conns) != 1 {
		t.Fatalf("%d packet-port connections, want 1", len(conns))
	}
	if st := conns[0].Stats(); st.Received == 0 || st.Sent == 0 {
		t.Fatalf("packet-port connection stats %+v: want packets both ways", st)
	}
	k0 := l.nodes[0].key.Public()
	for deadline := time.Now().Add(eventCeiling); !l.nodes[1].ssh.Ready(k0) || !l.nodes[1].ssh.Has(k0); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("node 1's SSH transport does not route to node 0 through the packet port")
		}
	}
	old := conns[0].ID()
	conns[0].Close()
	deadline := time.Now().Add(eventCeiling)
	for {
		cs := pp.Listener().Conns()
		if len(cs) == 1 && cs[0].ID() != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new packet-port connection after the old one closed (%d open)", len(cs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	took = l.pingUntil("ssh ")
	t.Logf("back on SSH through a new packet-port connection after %v", took)
	l.waitPeerPath(1, "ssh", hasPrefix("ssh"))
}

// A packet-port connection carries whoever reached it: nothing is trusted
// until the device authenticated a packet. Garbage on a connection binds
// it to no peer, and the transport does not route anyone's packets to it.
func TestPacketPortUnauthenticated(t *testing.T) {
	l := newLabMode(t, sshGateway)
	n := l.nodes[1]
	c, err := net.Dial("tcp", n.pp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rejected := func() uint64 {
		d := n.dev.Counters().Drops
		return d[device.DropJunk] + d[device.DropBadMAC1]
	}
	before := rejected()
	junk := make([]byte, 2+148)
	junk[1] = 148
	junk[2] = 1 // looks like a handshake initiation, is not one
	for i := 0; i < 20; i++ {
		if _, err := c.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(eventCeiling)
	for len(n.pp.Listener().Conns()) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("packet-port connection not accepted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The device has seen (and refused) every one of them.
	for rejected()-before < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("the device refused %d of the 20 junk packets", rejected()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	k0 := l.nodes[0].key.Public()
	n.ssh.mu.Lock()
	bound := len(n.ssh.ppIn)
	n.ssh.mu.Unlock()
	if bound != 0 || n.ssh.Ready(k0) {
		t.Fatalf("unauthenticated packets bound a packet-port connection (%d bound, ready %v)", bound, n.ssh.Ready(k0))
	}
}

func TestKeyEndpoint(t *testing.T) {
	b := NewBind(memnet.New().NewBind(netip.MustParseAddr("192.0.2.1"), 1))
	k, _ := nodekey.FromSeed(bytes.Repeat([]byte{3}, 32))
	for _, tc := range []struct {
		name    string
		kind    device.PathKind
		key     nodekey.PublicKey
		wantErr bool
	}{
		{"relay", device.PathRelay, k.Public(), false},
		{"ssh", device.PathSSH, k.Public(), false},
		{"udp kind", device.PathUDP, k.Public(), true},
		{"no kind", device.PathNone, k.Public(), true},
		{"zero key", device.PathRelay, nodekey.PublicKey{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := b.KeyEndpoint(tc.kind, tc.key)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("KeyEndpoint(%v, %s) = %v, want error", tc.kind, tc.key.ShortID(), ep)
				}
				return
			}
			if err != nil {
				t.Fatalf("KeyEndpoint(%v, %s): %v", tc.kind, tc.key.ShortID(), err)
			}
			e := ep.(*Endpoint)
			if e.PathKind() != tc.kind || e.Key() != tc.key {
				t.Fatalf("KeyEndpoint(%v, %s) = kind %v key %v", tc.kind, tc.key.ShortID(), e.PathKind(), e.Key().ShortID())
			}
			if again, _ := b.KeyEndpoint(tc.kind, tc.key); again != ep {
				t.Fatalf("KeyEndpoint(%v, %s) twice gave two endpoints", tc.kind, tc.key.ShortID())
			}
			if _, err := b.ParseEndpoint(e.DstToString()); err == nil {
				t.Fatalf("ParseEndpoint(%q) parsed a %v endpoint: they have no string form", e.DstToString(), tc.kind)
			}
		})
	}
}

func TestIsSTUNResponse(t *testing.T) {
	ok := make([]byte, 32)
	ok[0], ok[1] = 0x01, 0x01
	copy(ok[4:], []byte{0x21, 0x12, 0xA4, 0x42})
	for _, tc := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"binding success", ok, true},
		{"short", ok[:19], false},
		{"tunnel initiation", append([]byte{1, 0, 0, 0}, ok[4:]...), false},
		{"no cookie", append([]byte{1, 1, 0, 0, 0, 0, 0, 0}, make([]byte, 24)...), false},
	} {
		if got := IsSTUNResponse(tc.pkt); got != tc.want {
			t.Errorf("IsSTUNResponse(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// checkGoroutines fails t if goroutines started during it are still
// running eventCeiling after its cleanups (registered first, so it runs
// last).
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(eventCeiling)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines leaked:\n%s", runtime.NumGoroutine()-before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
