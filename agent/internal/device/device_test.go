package device

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"

	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/faketun"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/icmp"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
)

func TestMeshAllPairs(t *testing.T) {
	m := newMesh(t, 3, fastTiming())
	for i, a := range m.nodes {
		for j, b := range m.nodes {
			if i == j {
				continue
			}
			roundTrip(t, a, b, "hello from "+a.name+" to "+b.name)
		}
	}
	for i, a := range m.nodes {
		for j, b := range m.nodes {
			if i == j {
				continue
			}
			rtt, path := ping(t, a, b)
			if rtt <= 0 || path != "udp "+b.ul.String() {
				t.Errorf("Ping(%s->%s) = %v, %q; want rtt > 0, path %q", a.name, b.name, rtt, path, "udp "+b.ul.String())
			}
		}
	}
	st := m.nodes[0].dev.Status()
	if len(st.Peers) != 2 || st.Self != m.nodes[0].ip || st.ListenPort != 51820 {
		t.Fatalf("Status = %+v", st)
	}
	for _, ps := range st.Peers {
		if !ps.HasSession || ps.LastHandshake.IsZero() || ps.RxPackets == 0 || ps.TxPackets == 0 ||
			ps.RxBytes == 0 || ps.TxBytes == 0 || ps.RTT <= 0 || !ps.Endpoint.IsValid() || ps.Name == "" {
			t.Errorf("peer status incomplete: %+v", ps)
		}
	}
	for _, n := range m.nodes {
		c := n.dev.Counters()
		for r, v := range c.Drops {
			if v != 0 {
				t.Errorf("%s: %d drops %s in a clean run", n.name, v, DropReason(r))
			}
		}
	}
}

func TestNoPeerAndTooBig(t *testing.T) {
	m := newMesh(t, 2, fastTiming())
	a, b := m.nodes[0], m.nodes[1]
	stranger := &node{ip: netip.MustParseAddr("100.64.9.9")}
	a.tun.Inject(udpPacket(a, stranger, "nobody"))
	waitFor(t, "no_peer drop", 2*time.Second, func() bool { return drops(a, DropNoPeer) == 1 })
	big := udpPacket(a, b, strings.Repeat("x", DefaultMTU))
	a.tun.Inject(big) // no DF bit: dropped, no answer due
	waitFor(t, "too_big drop", 2*time.Second, func() bool { return drops(a, DropTooBig) == 1 })
	if c := a.dev.Counters(); c.FragNeededSent != 0 {
		t.Fatalf("FragNeededSent = %d after a packet without DF, want 0", c.FragNeededSent)
	}
	expectNone(t, a, 50*time.Millisecond)

	// With DF, the sender's kernel wants ICMP "fragmentation needed" back
	// through the TUN, from the destination, carrying the tunnel MTU.
	df := udpPacket(a, b, strings.Repeat("y", DefaultMTU))
	df[6] |= 0x40
	packet.PutIPv4HeaderChecksum(df)
	a.tun.Inject(df)
	var answer []byte
	select {
	case answer = <-a.tun.Outbound():
	case <-time.After(2 * time.Second):
		t.Fatal("no ICMP answer written to the TUN for a DF packet larger than the MTU")
	}
	waitFor(t, "FragNeededSent 1", 2*time.Second, func() bool { return a.dev.Counters().FragNeededSent == 1 })
	if drops(a, DropTooBig) != 2 {
		t.Fatalf("drops too_big = %d, want 2", drops(a, DropTooBig))
	}
	want := make([]byte, icmp.MaxIPv6Answer)
	var pp packet.Parsed
	pp.Parse(df)
	want = want[:icmp.FragNeeded(want, &pp, DefaultMTU)]
	if len(want) == 0 || !bytes.Equal(answer, want) {
		t.Fatalf("TUN got %x, want the icmp.FragNeeded answer %x", answer, want)
	}
	if answer[9] != 1 || answer[20] != 3 || answer[21] != 4 ||
		netip.AddrFrom4([4]byte(answer[12:16])) != b.ip || netip.AddrFrom4([4]byte(answer[16:20])) != a.ip ||
		int(binary.BigEndian.Uint16(answer[26:28])) != DefaultMTU {
		t.Fatalf("answer %x: want ICMP type 3 code 4 from %v to %v with MTU %d", answer[:28], b.ip, a.ip, DefaultMTU)
	}
	if _, _, err := a.dev.Ping(t.Context(), stranger.ip); !errors.Is(err, ErrNoPeer) {
		t.Fatalf("Ping(stranger) = %v, want ErrNoPeer", err)
	}
}

func TestAllowedIPs(t *testing.T) {
	m := newMesh(t, 3, fastTiming())
	a, b, c := m.nodes[0], m.nodes[1], m.nodes[2]
	roundTrip(t, b, a, "establish")
	// b claims to be c: the packet goes through b's tunnel to a.
	spoof := udpPacket(c, a, "spoofed")
	b.tun.Inject(spoof)
	waitFor(t, "allowed_ips drop", 2*time.Second, func() bool { return drops(a, DropAllowedIPs) == 1 })
	expectNone(t, a, 100*time.Millisecond)
}

func TestFilterHook(t *testing.T) {
	m := newMesh(t, 2, fastTiming())
	a, b := m.nodes[0], m.nodes[1]
	// Both hooks see the device's parse of the packet: b's inbound one
	// the packets from a, a's outbound one the packets a sends to b.
	var badIn, sent, badOut atomic.Int32
	cfgB := m.config(1)
	cfgB.Filter = funcFilter{in: func(p *packet.Parsed) bool {
		if p.Src != a.ip || p.Dst != b.ip || p.DstPort != 2000 {
			badIn.Add(1)
		}
		return !strings.Contains(string(p.Buf), "blocked")
	}}
	if err := b.dev.Reconfig(cfgB); err != nil {
		t.Fatal(err)
	}
	cfgA := m.config(0)
	cfgA.Filter = funcFilter{out: func(p *packet.Parsed) {
		if p.Dst != b.ip || p.Proto != packet.ProtoUDP || p.SrcPort != 1000 {
			badOut.Add(1)
		}
		sent.Add(1)
	}}
	if err := a.dev.Reconfig(cfgA); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, a, b, "allowed")
	a.tun.Inject(udpPacket(a, b, "blocked"))
	waitFor(t, "filter drop", 2*time.Second, func() bool { return drops(b, DropFilter) == 1 })
	roundTrip(t, a, b, "allowed again")
	if sent.Load() < 3 || badOut.Load() != 0 || badIn.Load() != 0 {
		t.Fatalf("outbound hook saw %d packets (%d wrong), inbound hook %d wrong; want >= 3 and none wrong", sent.Load(), badOut.Load(), badIn.Load())
	}
}

func TestReconfigInvalidChangesNothing(t *testing.T) {
	m := newMesh(t, 2, fastTiming())
	a := m.nodes[0]
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"duplicate ip", func(c *Config) {
			c.Peers = append(c.Peers, PeerConfig{PublicKey: testKey(t, 7).Public(), IP: c.Peers[0].IP})
		}, "peers[1].ip"},
		{"own key", func(c *Config) { c.Peers[0].PublicKey = c.PrivateKey.Public() }, "peers[0].publicKey"},
		{"no mesh", func(c *Config) { c.MeshID = "" }, "meshID"},
		{"port change", func(c *Config) { c.ListenPort = 1 }, "listenPort"},
		{"bad mtu", func(c *Config) { c.MTU = 10 }, "mtu"},
		{"zero psk", func(c *Config) { c.PSK = [32]byte{} }, "psk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := m.config(0)
			tt.mod(&cfg)
			err := a.dev.Reconfig(cfg)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Reconfig = %v, want ErrInvalidConfig naming %q", err, tt.want)
			}
			if n := len(a.dev.Status().Peers); n != 1 {
				t.Fatalf("peers after failed Reconfig = %d, want 1", n)
			}
		})
	}
	roundTrip(t, a, m.nodes[1], "still works")
}

func TestCloseRefuses(t *testing.T) {
	m := newMesh(t, 2, fastTiming())
	a := m.nodes[0]
	roundTrip(t, a, m.nodes[1], "x")
	if err := a.dev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.dev.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := a.dev.Reconfig(m.config(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reconfig after Close = %v, want ErrClosed", err)
	}
	if _, _, err := a.dev.Ping(t.Context(), m.nodes[1].ip); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after Close = %v, want ErrClosed", err)
	}
}

// batchBind records the largest batch handed to Send.
type batchBind struct {
	Bind
	maxBatch atomic.Int32
}

func (b *batchBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	for {
		cur := b.maxBatch.Load()
		if int32(len(bufs)) <= cur || b.maxBatch.CompareAndSwap(cur, int32(len(bufs))) {
			break
		}
	}
	return b.Bind.Send(bufs, ep)
}

func TestDisableUDPSendBatching(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("disable=%v", disable), func(t *testing.T) {
			m := newMeshStopped(t, 2, fastTiming())
			a, b := m.nodes[0], m.nodes[1]
			var want [][]byte
			for i := 0; i < 16; i++ {
				want = append(want, udpPacket(a, b, fmt.Sprintf("burst %02d", i)))
			}
			// The burst waits in a's TUN before its device starts, so the
			// first read takes all 16 packets as one batch.
			m.tunHook = func(i int, tun *faketun.Device) {
				if i == 0 {
					for _, p := range want {
						tun.Inject(p)
					}
				}
			}
			var sender *batchBind
			m.bindWrap = func(i int, b Bind) Bind {
				if i == 0 {
					sender = &batchBind{Bind: b}
					return sender
				}
				return b
			}
			for i := range m.nodes {
				cfg := m.config(i)
				cfg.DisableUDPSendBatching = disable
				m.start(i, cfg)
			}
			for _, p := range want {
				expect(t, b, p, 5*time.Second)
			}
			// A burst of one flow in one read leaves as one batch
			// (queue.go: none of it is sparse).
			wantMax := int32(16)
			if disable {
				wantMax = 1
			}
			if got := sender.maxBatch.Load(); got != wantMax {
				t.Fatalf("largest Send batch = %d, want %d", got, wantMax)
			}
		})
	}
}
