package engine

import (
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/faketun"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/memnet"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// noParseBind is a UDP bind that fails the test when anything asks it to
// parse an endpoint from a string.
type noParseBind struct {
	*memnet.Bind
	t *testing.T
}

func (b noParseBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	b.t.Errorf("ParseEndpoint(%q) called: endpoints must travel as typed values", s)
	return b.Bind.ParseEndpoint(s)
}

func pathEndpoints(st Status, name string) []device.Endpoint {
	for _, p := range st.Peers {
		if p.Name == name {
			var out []device.Endpoint
			for _, ps := range p.Paths {
				out = append(out, ps.Endpoint)
			}
			return out
		}
	}
	return nil
}

// TestEndpointsRoundTrip: endpoints of every kind (UDP over IPv4 and IPv6,
// SSH, relay) go from the netmap through FromNetmap, Reconfig and the
// transports' bind into the device's peer, and come back out of Status as
// the same typed values, in the same order, with no string parsed on the
// way (the bind under the transports fails the test if asked to).
func TestEndpointsRoundTrip(t *testing.T) {
	checkGoroutines(t)
	kb := testKey(t, 2).Public()
	v4, v6 := netip.MustParseAddrPort("192.0.2.2:51820"), netip.MustParseAddrPort("[2001:db8::2]:51820")
	nm := testNetmap(t)
	// Nothing listens at these: the transports' connection attempts fail
	// in the background, which does not matter here.
	nm.Relays = []api.Relay{{ID: "coord"}}
	nm.Peers = []api.Node{{Name: "b", IP: netip.MustParseAddr("100.64.0.2"), PublicKey: kb,
		Endpoints: []netip.AddrPort{v4, v6}, SSHEndpoint: netip.MustParseAddrPort("127.0.0.1:1"), HomeRelay: "coord"}}
	l := testLocal(t)
	l.Coordinator = "https://127.0.0.1:1"
	cfg, skipped := FromNetmap(nm, l)
	if len(skipped) != 0 {
		t.Fatalf("skipped %q", skipped)
	}
	want := []device.Endpoint{device.UDPEndpoint(v4), device.UDPEndpoint(v6), device.SSHEndpoint(kb), device.RelayEndpoint(kb)}
	if got := cfg.Device.Peers[0].Endpoints; !slices.Equal(got, want) {
		t.Fatalf("FromNetmap endpoints = %v, want %v", got, want)
	}

	udp := noParseBind{memnet.New().NewBind(netip.MustParseAddr("192.0.2.1"), 16), t}
	e, err := New(faketun.New("tmeng0", device.DefaultMTU, 16), cfg, Options{UDP: udp}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if got := pathEndpoints(e.Status(), "b"); !slices.Equal(got, want) {
		t.Fatalf("device paths = %v, want %v", got, want)
	}

	// The next netmap drops the IPv6 address and the relay, and moves the
	// SSH endpoint: the device's peer follows.
	nm.Peers[0].Endpoints = []netip.AddrPort{v4}
	nm.Peers[0].SSHEndpoint = netip.MustParseAddrPort("127.0.0.1:2")
	nm.Relays = nil
	cfg, _ = FromNetmap(nm, l)
	if err := e.Reconfig(cfg); err != nil {
		t.Fatal(err)
	}
	want = []device.Endpoint{device.UDPEndpoint(v4), device.SSHEndpoint(kb)}
	if got := pathEndpoints(e.Status(), "b"); !slices.Equal(got, want) {
		t.Fatalf("device paths after Reconfig = %v, want %v", got, want)
	}
	if st := e.Status(); st.ListenPort == 0 || len(st.Peers) != 1 || st.Drops == nil {
		t.Fatalf("Status = %+v", st)
	}
}

// TestReconfigRefusesBadEndpoint: an endpoint the bind cannot make is an
// invalid configuration and changes nothing.
func TestReconfigRefusesBadEndpoint(t *testing.T) {
	nm := testNetmap(t)
	v4 := netip.MustParseAddrPort("192.0.2.2:51820")
	nm.Peers = []api.Node{{Name: "b", IP: netip.MustParseAddr("100.64.0.2"), PublicKey: testKey(t, 2).Public(), Endpoints: []netip.AddrPort{v4}}}
	cfg, _ := FromNetmap(nm, testLocal(t))
	e, err := New(faketun.New("tmeng1", device.DefaultMTU, 16), cfg, Options{UDP: noParseBind{memnet.New().NewBind(netip.MustParseAddr("192.0.2.1"), 16), t}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	bad := cfg
	bad.Device.Peers = slices.Clone(cfg.Device.Peers)
	bad.Device.Peers[0].Endpoints = []device.Endpoint{device.UDPEndpoint(v4), {Kind: device.PathSSH}} // no key
	if err := e.Reconfig(bad); err == nil {
		t.Fatal("Reconfig with an SSH endpoint without key succeeded")
	}
	if got, want := pathEndpoints(e.Status(), "b"), []device.Endpoint{device.UDPEndpoint(v4)}; !slices.Equal(got, want) {
		t.Fatalf("device paths after a refused Reconfig = %v, want %v", got, want)
	}
}

// checkGoroutines fails t if goroutines started during it are still
// running a few seconds after its cleanups (registered first, so it runs
// last).
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
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
