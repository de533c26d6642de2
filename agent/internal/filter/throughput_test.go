package filter_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/faketun"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/memnet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/filter"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// BenchmarkDataPlane moves 1,400-byte UDP packets from A to B through the
// real data plane (in-memory network, fake TUNs), with and without the
// filter wired in as the node wires it (B's filter allows A by a rule among
// 1,000 and tracks 100,000 other flows), to show what the filter costs in
// throughput:
//
//	go test ./agent/internal/filter -run XXX -bench DataPlane -benchtime 200000x
func BenchmarkDataPlane(b *testing.B) {
	for _, withFilter := range []bool{false, true} {
		name := "no-filter"
		if withFilter {
			name = "filter"
		}
		b.Run(name, func(b *testing.B) { benchDataPlane(b, withFilter) })
	}
}

func benchDataPlane(b *testing.B, withFilter bool) {
	net := memnet.New()
	net.SetBlocking(true)
	var psk [32]byte
	psk[0] = 1
	type end struct {
		ip  netip.Addr
		key nodekey.PrivateKey
		ul  netip.AddrPort
		tun *faketun.Device
		dev *device.Device
		flt *filter.Filter
	}
	ends := make([]*end, 2)
	for i := range ends {
		k, err := nodekey.FromSeed(bytes.Repeat([]byte{byte(i + 9)}, 32))
		if err != nil {
			b.Fatal(err)
		}
		ends[i] = &end{ip: netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)}), key: k,
			ul:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 51820),
			tun: faketun.New("bench", device.DefaultMTU, 128)}
	}
	var delivered atomic.Uint64
	ends[1].tun.Sink = func([]byte) { delivered.Add(1) }
	ends[1].tun.AnswerPings = true
	for i, e := range ends {
		o := ends[1-i]
		cfg := device.Config{PrivateKey: e.key, PSK: psk, MeshID: "bench", ListenPort: e.ul.Port(), Self: e.ip,
			PersistentKeepalive: -1, Peers: []device.PeerConfig{{Name: "peer", PublicKey: o.key.Public(), IP: o.ip, Endpoints: []device.Endpoint{device.UDPEndpoint(o.ul)}}}}
		tun := e.tun
		if withFilter {
			e.flt = filter.New(filter.Config{Self: e.ip})
			rules := benchRules(o.ip)
			if err := e.flt.SetFilter(rules); err != nil {
				b.Fatal(err)
			}
			for j := range 100_000 {
				var p packet.Parsed
				p.Parse(udpPacket(e.ip, netip.AddrFrom4([4]byte{100, 65, byte(j >> 8), byte(j)}), uint16(j), 53, 0))
				e.flt.Outbound(&p)
			}
			cfg.Filter = e.flt
		}
		dev, err := device.New(tun, net.NewBind(e.ul.Addr(), 128), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		e.dev = dev
		b.Cleanup(func() { dev.Close() })
	}
	a := ends[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := a.dev.Ping(ctx, ends[1].ip); err != nil {
		b.Fatal(err)
	}
	pkt := udpPacket(a.ip, ends[1].ip, 4000, 5000, 1400-28)
	b.SetBytes(int64(len(pkt)))
	b.ResetTimer()
	for range b.N {
		a.tun.InjectShared(pkt)
	}
	deadline := time.Now().Add(time.Minute)
	for delivered.Load() < uint64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	if got := delivered.Load(); got < uint64(b.N) {
		b.Fatalf("delivered %d of %d", got, b.N)
	}
}

// benchRules is 1,000 rules, one of which allows src on udp/5000, and
// ICMP from src.
func benchRules(src netip.Addr) *api.Filter {
	f := &api.Filter{PolicyVersion: 1}
	for i := range 1000 {
		r := api.FilterRule{Name: "r", Protocol: "tcp",
			Sources: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 66, byte(i >> 8), byte(i)}), 32)},
			Ports:   []api.PortRange{{First: uint16(1 + i), Last: uint16(1 + i)}}}
		if i == 500 {
			r = api.FilterRule{Name: "a-udp", Protocol: "udp", Sources: []netip.Prefix{netip.PrefixFrom(src, 32)},
				Ports: []api.PortRange{{First: 5000, Last: 5000}}}
		}
		f.Rules = append(f.Rules, r)
	}
	// The device's own ping (used to set up the session) needs ICMP.
	f.Rules = append(f.Rules, api.FilterRule{Name: "ping", Protocol: "icmp", Sources: []netip.Prefix{netip.PrefixFrom(src, 32)}})
	return f
}

func udpPacket(src, dst netip.Addr, sport, dport uint16, payload int) []byte {
	return faketun.UDPPacket(src.As4(), dst.As4(), sport, dport, make([]byte, payload))
}
