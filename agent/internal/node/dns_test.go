package node

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/engine"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/splitdns"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/tunif"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
)

func TestDNSConfig(t *testing.T) {
	self := netip.MustParseAddr("100.64.0.3")
	other := netip.MustParseAddr("100.64.0.9")
	cidr := netip.MustParsePrefix("100.64.0.0/10")
	for _, tt := range []struct {
		name    string
		servers []netip.Addr
		want    []netip.Addr
	}{
		{"none", nil, nil},
		{"another node", []netip.Addr{other}, []netip.Addr{other}},
		{"this node only: no loop through itself", []netip.Addr{self}, nil},
		{"this node and another", []netip.Addr{self, other}, []netip.Addr{other}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nm := &api.Netmap{MeshCIDR: cidr, Self: api.Node{IP: self}, DNS: api.DNSConfig{Zone: "mesh", Servers: tt.servers}}
			got := dnsConfig(nm, self)
			want := splitdns.Config{Zone: "mesh", Servers: tt.want, MeshCIDR: cidr}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("dnsConfig(servers %v) = %+v, want %+v", tt.servers, got, want)
			}
		})
	}
}

func TestFindPeerNames(t *testing.T) {
	ip := netip.MustParseAddr("100.64.0.7")
	n := &Node{applied: engine.Config{Device: device.Config{Peers: []device.PeerConfig{{Name: "db1", IP: ip}}}}, netmap: &api.Netmap{DNS: api.DNSConfig{Zone: "corp.example"}}}
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"db1", true}, {"DB1", true}, {"100.64.0.7", true}, {"db1.corp.example", true}, {"DB1.Corp.Example.", true},
		{"db1.mesh", false}, {"db1.other.example", false}, {"db2.corp.example", false}, {"corp.example", false}, {"100.64.0.8", false},
	} {
		p, ok := n.findPeer(tt.in)
		if ok != tt.ok || ok && p.IP != ip {
			t.Errorf("findPeer(%q) = %v, %v; want found %v", tt.in, p.IP, ok, tt.ok)
		}
	}
	n.netmap = &api.Netmap{} // no zone in the netmap: "mesh"
	if _, ok := n.findPeer("db1.mesh"); !ok {
		t.Errorf("findPeer(db1.mesh) without a netmap zone: not found")
	}
}

// The node publishes its services, points a resolv.conf at the netmap's DNS
// servers except itself, follows changes, and restores the file on exit.
func TestNodeMeshDNS(t *testing.T) {
	fake := registrytest.New(netip.MustParsePrefix("100.64.0.0/24"))
	defer fake.Close()
	dir := state.Dir(filepath.Join(t.TempDir(), "st"))
	key, keyFile, err := dir.LoadKey("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dnsSvc := []api.Service{{Name: api.ServiceDNS, Protocol: "udp", Port: 53}}
	st, err := Join(ctx, JoinRequest{Coordinator: fake.URL, Token: fake.CreateToken(false), Name: "ns1", Key: key, KeyFile: keyFile, Services: dnsSvc})
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.SaveNode(st); err != nil {
		t.Fatal(err)
	}
	otherKey, _ := nodekey.Generate()
	_, other, err := fake.AddNode("ns2", otherKey)
	if err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	orig := "nameserver 192.0.2.53\nsearch example\n"
	if err := os.WriteFile(resolv, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	fake.SetDNS(api.DNSConfig{Zone: "mesh", Servers: []netip.Addr{st.IP}})

	plane := newFakePlane()
	n, err := New(Config{
		Dir: dir, State: st, Key: key, Interface: "tmdns0", MTU: 1400,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewEngine: func(_ tun.Device, c engine.Config, _ *slog.Logger) (Engine, error) {
			plane.Reconfig(c)
			return plane, nil
		},
		OpenInterface: func(tunif.Config) (tun.Device, func() error, error) {
			return tuntest.NewChannelTUN().TUN(), func() error { return nil }, nil
		},
		HeartbeatInterval: 50 * time.Millisecond,
		EndpointInterval:  50 * time.Millisecond,
		Services:          dnsSvc,
		DNSMode:           splitdns.ModeResolvConf,
		ResolvConf:        resolv,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()

	waitFile := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			b, _ := os.ReadFile(resolv)
			if ok(string(b)) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("resolv.conf never %s; now:\n%s", what, b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	plane.waitConfig(t, "ns2 is a peer", func(c engine.Config) bool { return slices.Equal(peerNames(c), []string{"ns2"}) })
	// Only this node serves DNS: the file stays as it was (no loop).
	time.Sleep(200 * time.Millisecond)
	if b, _ := os.ReadFile(resolv); string(b) != orig {
		t.Fatalf("resolv.conf changed with only this node as DNS server:\n%s", b)
	}
	// The services reached the registry (the join, then endpoint reports).
	for _, nd := range fake.Nodes() {
		if nd.Name == "ns1" && !slices.Equal(nd.Services, dnsSvc) {
			t.Fatalf("ns1's services at the registry = %v, want %v", nd.Services, dnsSvc)
		}
	}

	fake.SetDNS(api.DNSConfig{Zone: "mesh", Servers: []netip.Addr{st.IP, other.IP}})
	waitFile("names ns2", func(s string) bool {
		return strings.Contains(s, "nameserver "+other.IP.String()+"\n") && !strings.Contains(s, "nameserver "+st.IP.String()) &&
			strings.HasSuffix(s, orig)
	})
	fake.SetDNS(api.DNSConfig{Zone: "mesh"})
	waitFile("restored when the netmap has no servers", func(s string) bool { return s == orig })
	fake.SetDNS(api.DNSConfig{Zone: "mesh", Servers: []netip.Addr{other.IP}})
	waitFile("names ns2 again", func(s string) bool { return strings.Contains(s, "nameserver "+other.IP.String()+"\n") })

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if b, _ := os.ReadFile(resolv); string(b) != orig {
		t.Fatalf("resolv.conf after the node stopped:\n%s\nwant the original:\n%s", b, orig)
	}
	if _, err := os.Stat(filepath.Join(string(dir), splitdns.BackupFile)); !os.IsNotExist(err) {
		t.Errorf("backup file left behind: %v", err)
	}
}
