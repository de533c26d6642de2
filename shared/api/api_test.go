package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

var update = flag.Bool("update", false, "rewrite golden files")

func fixedKey(t *testing.T, b byte) nodekey.PublicKey {
	seed := bytes.Repeat([]byte{b}, 32)
	k, err := nodekey.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// TestNetmapGolden pins the JSON wire form of a netmap: a change to the
// contract shows up as a diff of testdata/netmap.golden.json.
func TestNetmapGolden(t *testing.T) {
	nm := Netmap{
		Version:  42,
		MeshID:   "m-1",
		MeshCIDR: netip.MustParsePrefix("100.64.0.0/10"),
		Self: Node{ID: "n1", Name: "alpha", IP: netip.MustParseAddr("100.64.0.1"), PublicKey: fixedKey(t, 1),
			Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:51820")}, Online: true,
			LastSeen: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		Peers: []Node{{ID: "n2", Name: "beta", IP: netip.MustParseAddr("100.64.0.2"), PublicKey: fixedKey(t, 2),
			SSHEndpoint: netip.MustParseAddrPort("192.0.2.2:2222"), HomeRelay: "r1", Tags: []string{"tag:web"},
			Services: []Service{{Name: "http", Protocol: "tcp", Port: 80}}}},
		DNS:        DNSConfig{Zone: "mesh", Servers: []netip.Addr{netip.MustParseAddr("100.64.0.3")}},
		Relays:     []Relay{{ID: "r1", URL: "wss://coord.example:8443/relay"}},
		Registries: []string{"https://coord.example:8443", "https://coord2.example:8443"},
		Filter: &Filter{PolicyVersion: 3, Rules: []FilterRule{{Name: "web", Sources: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")},
			Protocol: "tcp", Ports: []PortRange{{First: 80, Last: 80}, {First: 8000, Last: 8999}}}}},
	}
	got, err := json.MarshalIndent(nm, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/netmap.golden.json"
	if *update {
		os.WriteFile(golden, append(got, '\n'), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(append(got, '\n'), want) {
		t.Errorf("netmap JSON differs from %s:\n%s", golden, got)
	}
	var back Netmap
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, nm) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, nm)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "node-1", "db1", "x23456789012345678901234567890123456789012345678901234567890123"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "A", "a.b", "a_b", "ü", "x234567890123456789012345678901234567890123456789012345678901234",
		"n0123456789abcdef0123"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) = nil, want error", bad)
		}
	}
}

func TestDuration(t *testing.T) {
	var r CreateTokenRequest
	if err := json.Unmarshal([]byte(`{"expiry":"24h"}`), &r); err != nil || time.Duration(r.Expiry) != 24*time.Hour {
		t.Errorf("expiry = %v, %v", r.Expiry, err)
	}
	for _, bad := range []string{`{"expiry":"-1h"}`, `{"expiry":5}`, `{"expiry":"soon"}`} {
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
	}
}

// TestServicesWire pins the JSON of the services a node reports at join and
// with its endpoints; the field is optional, so older nodes send none.
func TestServicesWire(t *testing.T) {
	req := EndpointsRequest{Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:51820")},
		Services: []Service{{Name: ServiceDNS, Protocol: "udp", Port: 53}}}
	got, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"endpoints":["192.0.2.1:51820"],"services":[{"name":"dns","protocol":"udp","port":53}]}`
	if string(got) != want {
		t.Errorf("Marshal(EndpointsRequest) = %s, want %s", got, want)
	}
	var back EndpointsRequest
	if err := json.Unmarshal([]byte(`{"endpoints":[]}`), &back); err != nil || back.Services != nil {
		t.Errorf("Unmarshal without services = %+v, %v; want no services", back, err)
	}
	j, err := json.Marshal(JoinRequest{Name: "ns1", Services: req.Services})
	if err != nil || !bytes.Contains(j, []byte(`"services":[{"name":"dns","protocol":"udp","port":53}]`)) {
		t.Errorf("Marshal(JoinRequest) = %s, %v; want the services", j, err)
	}
}

func TestIsNodeID(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"n0123456789abcdef0123", true},
		{"n0123456789abcdef012", false},   // 19 digits
		{"n0123456789abcdef01234", false}, // 21
		{"n0123456789abcdef012g", false},
		{"n0123456789ABCDEF0123", false},
		{"m0123456789abcdef0123", false},
		{"node-1", false},
	} {
		if got := IsNodeID(tt.in); got != tt.want {
			t.Errorf("IsNodeID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
