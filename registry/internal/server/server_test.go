package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/metrics"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/sqlite"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// openPolicy shows every peer and gives every node a filter.
type openPolicy struct{}

func (openPolicy) Visible(self, peer *api.Node) bool { return true }
func (openPolicy) ViewVersion() uint64               { return 0 }
func (openPolicy) Filter(self *api.Node) *api.Filter {
	return &api.Filter{PolicyVersion: 3, Rules: []api.FilterRule{{Name: "all-" + self.Name, Protocol: "tcp",
		Ports: []api.PortRange{{First: 22, Last: 22}}, Sources: []netip.Prefix{netip.MustParsePrefix("10.7.0.0/16")}}}}
}

type testPolicy struct{}

func (testPolicy) ViewVersion() uint64 { return 0 }

// Nodes see only peers sharing a tag; each gets a filter naming itself.
func (testPolicy) Visible(self, peer *api.Node) bool {
	for _, a := range self.Tags {
		for _, b := range peer.Tags {
			if a == b {
				return true
			}
		}
	}
	return false
}

func (testPolicy) Filter(self *api.Node) *api.Filter {
	return &api.Filter{PolicyVersion: 7, Rules: []api.FilterRule{{Name: "to-" + self.Name, Protocol: "any",
		Sources: []netip.Prefix{netip.PrefixFrom(self.IP, 32)}}}}
}

func newTestServer(t *testing.T, clock *fakeClock, pol Policy) (*Server, *sqlite.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mesh, err := st.InitMesh(ctx, netip.MustParsePrefix("10.7.0.0/16"), clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	met, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, st, Settings{
		Mesh: mesh, DNSZone: "mesh", OnlineTimeout: 30 * time.Second, TokenDefaultExpiry: time.Hour,
		Relays: []api.Relay{{ID: "r", URL: "wss://r/relay"}}, Pin: "pin", AdminCredential: "admin-credential-0123456789",
		Metrics: met, Now: clock.Now, Policy: pol,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func addNode(t *testing.T, s *Server, st store.Store, name string, tags []string, now time.Time) store.Node {
	t.Helper()
	ctx := context.Background()
	tok, _ := jointoken.New("pin")
	h := tok.SecretHash()
	if err := st.CreateToken(ctx, store.Token{ID: tok.ID, SecretHash: h[:], Tags: tags, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	k, _ := nodekey.Generate()
	res, err := st.Join(ctx, store.JoinParams{TokenID: tok.ID, TokenSecretHash: h, Name: name, PublicKey: k.Public(),
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:7")}, NewNodeID: "id-" + name, CredentialHash: []byte("h"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.refresh(ctx, res.Version); err != nil {
		t.Fatal(err)
	}
	return res.Node
}

// TestRenderMatchesEncoding checks the assembled netmap against
// json.Marshal of the api.Netmap it stands for.
func TestRenderMatchesEncoding(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for _, pol := range []Policy{nil, testPolicy{}, openPolicy{}} {
		s, st := newTestServer(t, clock, pol)
		addNode(t, s, st, "alpha", []string{"a"}, clock.Now())
		addNode(t, s, st, "bravo", []string{"a"}, clock.Now())
		addNode(t, s, st, "charlie", []string{"c"}, clock.Now())
		snap := s.hub.current()
		checkRender(t, s, snap, pol)
		self := snap.byID["id-alpha"]
		got := s.render(snap, self)

		want := api.Netmap{
			Version: snap.version, MeshID: s.set.Mesh.ID, MeshCIDR: s.set.Mesh.CIDR, PSK: &snap.psk, Self: self.node,
			DNS: api.DNSConfig{Zone: "mesh"}, Relays: s.set.Relays,
		}
		for _, e := range snap.order {
			if e != self && (pol == nil || pol.Visible(&self.node, &e.node)) {
				want.Peers = append(want.Peers, e.node)
			}
		}
		if pol != nil {
			want.Filter = pol.Filter(&self.node)
		}
		wantJSON, _ := json.Marshal(want)
		if string(got) != string(wantJSON) {
			t.Fatalf("render (policy %v):\n got %s\nwant %s", pol != nil, got, wantJSON)
		}
		var back api.Netmap
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		if len(back.Peers) != len(want.Peers) || back.Self.Name != "alpha" || back.Self.IP != self.node.IP {
			t.Fatalf("decoded render peers = %+v", back.Peers)
		}
		if _, ok := pol.(testPolicy); ok && (len(back.Peers) != 1 || back.Filter == nil || back.Filter.Rules[0].Name != "to-alpha") {
			t.Fatalf("policy not applied: peers %+v filter %+v", back.Peers, back.Filter)
		}
	}
}

// checkRender compares every node's rendered netmap with json.Marshal.
func checkRender(t *testing.T, s *Server, snap *snapshot, pol Policy) {
	t.Helper()
	for _, self := range snap.order {
		want := api.Netmap{
			Version: snap.version, MeshID: s.set.Mesh.ID, MeshCIDR: s.set.Mesh.CIDR, PSK: &snap.psk, Self: self.node,
			Peers: []api.Node{}, DNS: api.DNSConfig{Zone: "mesh"}, Relays: s.set.Relays,
		}
		for _, e := range snap.order {
			if e != self && (pol == nil || pol.Visible(&self.node, &e.node)) {
				want.Peers = append(want.Peers, e.node)
			}
		}
		if pol != nil {
			want.Filter = pol.Filter(&self.node)
		}
		wantJSON, _ := json.Marshal(want)
		parts, n := s.netmapParts(snap, self)
		got := s.render(snap, self)
		if string(got) != string(wantJSON) || n != len(got) || len(parts) == 0 {
			t.Fatalf("render %s of %d nodes (length %d):\n got %s\nwant %s", self.node.Name, len(snap.order), n, got, wantJSON)
		}
		// The gzip form decompresses (CRC and size checked) to the same.
		zr, err := gzip.NewReader(bytes.NewReader(bytes.Join(s.netmapGzip(snap, self), nil)))
		if err != nil {
			t.Fatalf("gzip netmap of %s: %v", self.node.Name, err)
		}
		unz, err := io.ReadAll(zr)
		if err != nil || string(unz) != string(wantJSON) {
			t.Fatalf("gunzip netmap of %s of %d nodes = %v:\n got %s\nwant %s", self.node.Name, len(snap.order), err, unz, wantJSON)
		}
	}
}

func TestRenderEveryPosition(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, st := newTestServer(t, clock, nil)
	for i, name := range []string{"delta", "alpha", "echo", "charlie", "bravo"} {
		addNode(t, s, st, name, nil, clock.Now())
		checkRender(t, s, s.hub.current(), nil)
		if len(s.hub.current().order) != i+1 {
			t.Fatalf("snapshot has %d nodes, want %d", len(s.hub.current().order), i+1)
		}
	}
	// Unchanged nodes keep their encoding across snapshots; changed ones
	// are encoded again.
	before := s.hub.current().byID["id-alpha"]
	v, err := st.SetEndpoints(context.Background(), "id-bravo", []netip.AddrPort{netip.MustParseAddrPort("192.0.2.9:9")}, store.SSH{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.refresh(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	after := s.hub.current()
	if &after.byID["id-alpha"].json[0] != &before.json[0] {
		t.Errorf("unchanged node re-encoded")
	}
	if !strings.Contains(string(after.byID["id-bravo"].json), "192.0.2.9:9") {
		t.Errorf("changed node not re-encoded: %s", after.byID["id-bravo"].json)
	}
	checkRender(t, s, after, nil)
}

// TestGzipChunkBoundaries renders around several chunk boundaries.
func TestGzipChunkBoundaries(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for _, pol := range []Policy{nil, openPolicy{}, testPolicy{}} {
		s, st := newTestServer(t, clock, pol)
		for i := range 2*gzChunk + 1 {
			addNode(t, s, st, fmt.Sprintf("n%03d", i), []string{"a"}, clock.Now())
			if n := i + 1; n <= 2 || n%gzChunk <= 1 || n == 2*gzChunk+1 {
				checkRender(t, s, s.hub.current(), pol)
			}
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tt := range []struct {
		h    string
		want bool
	}{
		{"gzip", true}, {"gzip, deflate, br", true}, {"br;q=1.0, GZIP;q=0.5", true}, {"deflate", false},
		{"", false}, {"gzip;q=0", false}, {"x-gzip", false},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if tt.h != "" {
			r.Header.Set("Accept-Encoding", tt.h)
		}
		if got := acceptsGzip(r); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tt.h, got, tt.want)
		}
	}
}

func TestOnlineSweep(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, st := newTestServer(t, clock, nil)
	ctx := context.Background()
	addNode(t, s, st, "alpha", nil, clock.Now())
	s.markSeen(ctx, "id-alpha", true)
	if e := s.hub.current().byID["id-alpha"]; !e.node.Online {
		t.Fatal("freshly joined node is offline")
	}
	v := s.Version()
	clock.Add(29 * time.Second)
	if err := s.sweepOnline(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Version() != v {
		t.Fatalf("version moved from %d to %d before the timeout", v, s.Version())
	}
	clock.Add(2 * time.Second)
	if err := s.sweepOnline(ctx); err != nil {
		t.Fatal(err)
	}
	if e := s.hub.current().byID["id-alpha"]; e.node.Online || s.Version() <= v {
		t.Fatalf("after the timeout: online %v version %d (was %d), want offline and a bump", e.node.Online, s.Version(), v)
	}
	v = s.Version()
	// A heartbeat brings it back at once.
	if err := s.markSeen(ctx, "id-alpha", true); err != nil {
		t.Fatal(err)
	}
	if e := s.hub.current().byID["id-alpha"]; !e.node.Online || s.Version() <= v {
		t.Fatalf("after heartbeat: online %v version %d (was %d)", e.node.Online, s.Version(), v)
	}
	// last_seen was persisted.
	_, nodes, _ := st.Nodes(ctx)
	if !nodes[0].LastSeen.Equal(clock.Now()) {
		t.Fatalf("stored last_seen = %v, want %v", nodes[0].LastSeen, clock.Now())
	}
}

func TestValidateEndpoints(t *testing.T) {
	mk := func(s ...string) []netip.AddrPort {
		var out []netip.AddrPort
		for _, x := range s {
			out = append(out, netip.MustParseAddrPort(x))
		}
		return out
	}
	if got, err := validateEndpoints(mk("10.0.0.1:5", "172.16.0.1:5", "192.168.0.1:5", "[fd00::1]:5", "100.64.0.1:5")); err != nil || len(got) != 5 {
		t.Fatalf("validateEndpoints(private) = %v, %v; want all five", got, err)
	}
	got, err := validateEndpoints(mk("192.0.2.1:5", "[::ffff:192.0.2.1]:5", "[2001:db8::1]:6"))
	if err != nil || len(got) != 2 || got[0] != mk("192.0.2.1:5")[0] {
		t.Fatalf("validateEndpoints dedup/unmap = %v, %v", got, err)
	}
	for _, bad := range [][]netip.AddrPort{mk("0.0.0.0:5"), mk("192.0.2.1:0"), mk("[ff02::1]:5"), mk("[fe80::1%eth0]:5"), {{}},
		mk("127.0.0.1:22"), mk("[::1]:5"), mk("169.254.169.254:80"), mk("[fe80::1]:5"), mk("[::ffff:127.0.0.1]:5"),
		mk("255.255.255.255:5"), mk("224.0.0.251:5353"), mk("192.0.2.1:5", "127.0.0.2:5")} {
		if _, err := validateEndpoints(bad); err == nil {
			t.Errorf("validateEndpoints(%v) accepted", bad)
		}
	}
}

// FuzzDecodeBodies feeds every request body the API decodes from untrusted
// senders; decoding must fail cleanly or yield values the validators handle.
func FuzzDecodeBodies(f *testing.F) {
	k, _ := nodekey.Generate()
	f.Add([]byte(`{"protocol_version":1,"token":"tm1.a.b.c","name":"x","public_key":"` + k.Public().String() + `","endpoints":["1.2.3.4:5"]}`))
	f.Add([]byte(`{"endpoints":["[::1]:5"],"ssh_endpoint":"1.2.3.4:22"}`))
	f.Add([]byte(`{"reusable":true,"expiry":"24h","tags":["a"]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte(`{"expiry":"-5s"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var j api.JoinRequest
		if decodeJSON(b, &j) == nil {
			validateEndpoints(j.Endpoints)
			validateSSHEndpoint(j.SSHEndpoint)
			api.ValidateName(api.NormalizeName(j.Name))
			jointoken.Parse(j.Token)
			j.PublicKey.Validate()
		}
		var e api.EndpointsRequest
		if decodeJSON(b, &e) == nil {
			validateEndpoints(e.Endpoints)
			validateSSHEndpoint(e.SSHEndpoint)
		}
		var c api.CreateTokenRequest
		if decodeJSON(b, &c) == nil {
			if c.Expiry < 0 {
				t.Fatalf("negative expiry decoded from %q", b)
			}
			normalizeTags(c.Tags)
		}
		var empty struct{}
		decodeJSON(b, &empty)
	})
}
