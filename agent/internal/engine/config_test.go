package engine

import (
	"bytes"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/transport"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

func testKey(t *testing.T, seed byte) nodekey.PrivateKey {
	t.Helper()
	k, err := nodekey.FromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testLocal(t *testing.T) Local {
	return Local{Key: testKey(t, 1), MeshID: "m1", PSK: api.MeshPSK{Current: bytes.Repeat([]byte{9}, api.PSKSize)},
		Self: netip.MustParseAddr("100.64.0.1"), MTU: 1400, Coordinator: "https://192.0.2.100:8443"}
}

func testNetmap(t *testing.T) *api.Netmap {
	return &api.Netmap{
		Version:  7,
		MeshID:   "m1",
		MeshCIDR: netip.MustParsePrefix("100.64.0.0/24"),
		Self:     api.Node{Name: "a", IP: netip.MustParseAddr("100.64.0.1"), PublicKey: testKey(t, 1).Public(), HomeRelay: "coord"},
	}
}

func peerNames(c Config) []string {
	var s []string
	for _, p := range c.Device.Peers {
		s = append(s, p.Name)
	}
	return s
}

func TestFromNetmapSkipsUnusablePeers(t *testing.T) {
	nm := testNetmap(t)
	b := api.Node{Name: "b", IP: netip.MustParseAddr("100.64.0.3"), PublicKey: testKey(t, 3).Public(),
		Endpoints: []netip.AddrPort{
			netip.MustParseAddrPort("0.0.0.0:1"),        // unspecified
			netip.MustParseAddrPort("192.0.2.1:5"),      // usable
			netip.MustParseAddrPort("224.0.0.1:5"),      // multicast
			netip.MustParseAddrPort("192.0.2.1:0"),      // no port
			netip.MustParseAddrPort("[2001:db8::1]:0"),  // no port
			netip.MustParseAddrPort("[2001:db8::1]:51"), // usable
		}}
	a := api.Node{Name: "c", IP: netip.MustParseAddr("100.64.0.2"), PublicKey: testKey(t, 2).Public()}
	outside := api.Node{Name: "outside", IP: netip.MustParseAddr("10.0.0.1"), PublicKey: testKey(t, 4).Public()}
	badKey := api.Node{Name: "badkey", IP: netip.MustParseAddr("100.64.0.9")}
	dupIP := api.Node{Name: "dupip", IP: b.IP, PublicKey: testKey(t, 5).Public()}
	nm.Peers = []api.Node{b, a, b, nm.Self, outside, badKey, dupIP}
	cfg, skipped := FromNetmap(nm, testLocal(t))
	if got := peerNames(cfg); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("FromNetmap peers = %v, want [b c]", got)
	}
	if len(skipped) != 5 {
		t.Fatalf("skipped = %q, want 5 entries", skipped)
	}
	want := []device.Endpoint{
		device.UDPEndpoint(netip.MustParseAddrPort("192.0.2.1:5")),
		device.UDPEndpoint(netip.MustParseAddrPort("[2001:db8::1]:51")),
	}
	if got := cfg.Device.Peers[0].Endpoints; !slices.Equal(got, want) {
		t.Fatalf("b endpoints = %v, want %v (only the usable ones)", got, want)
	}
}

// TestFromNetmapEndpoints: every kind of endpoint comes out of the netmap
// as a typed value, UDP first, then SSH, then the relay.
func TestFromNetmapEndpoints(t *testing.T) {
	kb, kc, kd := testKey(t, 2).Public(), testKey(t, 3).Public(), testKey(t, 4).Public()
	hostKey := testKey(t, 8).Public()
	v4, v6 := netip.MustParseAddrPort("192.0.2.2:51820"), netip.MustParseAddrPort("[2001:db8::2]:51820")
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.3]:51820")
	sshAt := netip.MustParseAddrPort("198.51.100.2:2222")
	nm := testNetmap(t)
	nm.Relays = []api.Relay{{ID: "coord"}, {ID: "r2", URL: "wss://relay.example/relay", TLSPin: "pin"}}
	nm.Peers = []api.Node{
		// sshgw endpoint, home relay.
		{Name: "b", IP: netip.MustParseAddr("100.64.0.2"), PublicKey: kb, Endpoints: []netip.AddrPort{v4, v6},
			SSHEndpoint: sshAt, HomeRelay: "r2"},
		// OpenSSH endpoint with everything it needs.
		{Name: "c", IP: netip.MustParseAddr("100.64.0.3"), PublicKey: kc, Endpoints: []netip.AddrPort{mapped},
			SSHEndpoint: sshAt, SSHHostKey: &hostKey, SSHUser: "tm", SSHPacketPort: 7600, HomeRelay: "coord"},
		// OpenSSH endpoint without its packet port: not dialable.
		{Name: "d", IP: netip.MustParseAddr("100.64.0.4"), PublicKey: kd, SSHEndpoint: sshAt, SSHHostKey: &hostKey, SSHUser: "tm"},
	}
	for _, tc := range []struct {
		name       string
		acceptsSSH bool
		relays     []api.Relay
		coord      string
		want       map[string][]device.Endpoint
	}{
		{"relays", false, nm.Relays, "https://192.0.2.100:8443", map[string][]device.Endpoint{
			"b": {device.UDPEndpoint(v4), device.UDPEndpoint(v6), device.SSHEndpoint(kb), device.RelayEndpoint(kb)},
			"c": {device.UDPEndpoint(netip.MustParseAddrPort("192.0.2.3:51820")), device.SSHEndpoint(kc), device.RelayEndpoint(kc)},
			"d": {device.RelayEndpoint(kd)},
		}},
		{"accepts ssh, no relay", true, nil, "https://192.0.2.100:8443", map[string][]device.Endpoint{
			"b": {device.UDPEndpoint(v4), device.UDPEndpoint(v6), device.SSHEndpoint(kb)},
			"c": {device.UDPEndpoint(netip.MustParseAddrPort("192.0.2.3:51820")), device.SSHEndpoint(kc)},
			"d": {device.SSHEndpoint(kd)},
		}},
		{"coordinator relay without a coordinator host", false, nm.Relays[:1], "", map[string][]device.Endpoint{
			"b": {device.UDPEndpoint(v4), device.UDPEndpoint(v6), device.SSHEndpoint(kb)},
			"c": {device.UDPEndpoint(netip.MustParseAddrPort("192.0.2.3:51820")), device.SSHEndpoint(kc)},
			"d": {},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := *nm
			m.Relays = tc.relays
			l := testLocal(t)
			l.AcceptsSSH, l.Coordinator = tc.acceptsSSH, tc.coord
			cfg, skipped := FromNetmap(&m, l)
			if len(skipped) != 0 {
				t.Fatalf("skipped %q", skipped)
			}
			for _, p := range cfg.Device.Peers {
				if !slices.Equal(p.Endpoints, tc.want[p.Name]) {
					t.Errorf("FromNetmap: %s endpoints = %v, want %v", p.Name, p.Endpoints, tc.want[p.Name])
				}
			}
		})
	}

	cfg, _ := FromNetmap(nm, testLocal(t))
	wantRelays := []api.Relay{{ID: "coord", URL: "wss://192.0.2.100:8443/relay"}, nm.Relays[1]}
	if !reflect.DeepEqual(cfg.Transport.Relays, wantRelays) || cfg.Transport.HomeRelay != "coord" {
		t.Errorf("FromNetmap relays = %+v home %q, want %+v home coord", cfg.Transport.Relays, cfg.Transport.HomeRelay, wantRelays)
	}
	wantPeers := map[nodekey.PublicKey]transport.Peer{
		kb: {HomeRelay: "r2", SSH: transport.SSHPeer{Addr: sshAt}},
		kc: {HomeRelay: "coord", SSH: transport.SSHPeer{Addr: sshAt, HostKey: &hostKey, User: "tm", PacketPort: 7600}},
		kd: {},
	}
	if !reflect.DeepEqual(cfg.Transport.Peers, wantPeers) {
		t.Errorf("FromNetmap transport peers = %+v, want %+v", cfg.Transport.Peers, wantPeers)
	}
}

func TestFromNetmapLocal(t *testing.T) {
	l := testLocal(t)
	l.ListenPort = 51999
	prev := bytes.Repeat([]byte{7}, api.PSKSize)
	until := time.Now().Add(time.Minute)
	l.PSK.Previous, l.PSK.PreviousUntil = prev, until
	nm := testNetmap(t)
	nm.Filter = &api.Filter{PolicyVersion: 3}
	for _, m := range []*api.Netmap{nil, nm} {
		cfg, _ := FromNetmap(m, l)
		d := cfg.Device
		if d.PrivateKey.Public() != l.Key.Public() || d.MeshID != "m1" || d.Self != l.Self || d.MTU != 1400 || d.ListenPort != 51999 ||
			!bytes.Equal(d.PSK[:], l.PSK.Current) || !bytes.Equal(d.PrevPSK[:], prev) || !d.PrevPSKUntil.Equal(until) {
			t.Fatalf("FromNetmap(%v) device config does not carry the node's own settings", m != nil)
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("FromNetmap(%v) device config: %v", m != nil, err)
		}
		if (m == nil) != (cfg.Filter == nil) {
			t.Fatalf("FromNetmap(%v).Filter = %v", m != nil, cfg.Filter)
		}
	}
}
