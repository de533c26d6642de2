package coordinator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

func TestJoinNetmapAndWatch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tc := startDefault(t)
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true, Tags: []string{"server"}})

	a := tc.join(t, tok, "Alpha")
	if a.join.Name != "alpha" {
		t.Errorf("join name = %q, want alpha (normalised)", a.join.Name)
	}
	if !meshnet.DefaultCIDR.Contains(a.join.IP) || a.join.MeshCIDR != meshnet.DefaultCIDR {
		t.Errorf("join ip %s / cidr %s not in the default mesh prefix", a.join.IP, a.join.MeshCIDR)
	}
	if len(a.join.PSK) != api.PSKSize || a.join.MeshID != tc.MeshID() {
		t.Errorf("join psk %d bytes mesh %q, want %d bytes mesh %q", len(a.join.PSK), a.join.MeshID, api.PSKSize, tc.MeshID())
	}
	if len(a.join.Tags) != 1 || a.join.Tags[0] != "server" {
		t.Errorf("join tags = %v, want [server]", a.join.Tags)
	}

	nm, err := a.client.Netmap(ctx, 0, 0)
	if err != nil {
		t.Fatalf("netmap: %v", err)
	}
	if nm.Self.Name != "alpha" || nm.Self.IP != a.join.IP || nm.Self.PublicKey != a.key.Public() || len(nm.Peers) != 0 {
		t.Fatalf("netmap self=%+v peers=%d, want alpha at %s and no peers", nm.Self, len(nm.Peers), a.join.IP)
	}
	if nm.DNS.Zone != "mesh" || !nm.Self.Online {
		t.Errorf("netmap dns zone %q online %v, want mesh, true", nm.DNS.Zone, nm.Self.Online)
	}

	// A watcher at the current version hears about a new peer and about its
	// endpoint change.
	type result struct {
		nm  *api.Netmap
		err error
	}
	got := make(chan result, 1)
	go func() {
		nm2, err := a.client.Netmap(ctx, nm.Version, 20*time.Second)
		got <- result{nm2, err}
	}()
	time.Sleep(50 * time.Millisecond)
	b := tc.join(t, tok, "bravo")
	r := <-got
	if r.err != nil {
		t.Fatalf("watch: %v", r.err)
	}
	if r.nm.Version <= nm.Version || peerNames(r.nm)["bravo"].IP != b.join.IP {
		t.Fatalf("watch after join: version %d (was %d), peers %v; want bravo at %s", r.nm.Version, nm.Version, peerNames(r.nm), b.join.IP)
	}
	if b.join.IP == a.join.IP {
		t.Fatalf("both nodes got %s", a.join.IP)
	}

	eps := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:41641"), netip.MustParseAddrPort("[2001:db8::1]:41641")}
	if err := b.client.ReportEndpoints(ctx, api.EndpointsRequest{Endpoints: eps, SSHEndpoint: netip.MustParseAddrPort("192.0.2.7:2222")}); err != nil {
		t.Fatalf("report endpoints: %v", err)
	}
	nm3 := a.waitNetmap(t, r.nm.Version, func(nm *api.Netmap) bool { return len(peerNames(nm)["bravo"].Endpoints) == 2 })
	if p := peerNames(nm3)["bravo"]; p.Endpoints[0] != eps[0] || p.SSHEndpoint.Port() != 2222 {
		t.Errorf("bravo as alpha sees it = %+v, want endpoints %v", p, eps)
	}

	// Nothing changed: a short wait ends in 304.
	if _, err := a.client.Netmap(ctx, nm3.Version, 100*time.Millisecond); !errors.Is(err, regclient.ErrNotModified) {
		t.Errorf("netmap with no change = %v, want ErrNotModified", err)
	}
	// A since from the future (registry restored) answers at once.
	if nm4, err := a.client.Netmap(ctx, nm3.Version+100, 10*time.Second); err != nil || nm4.Version != nm3.Version {
		t.Errorf("netmap since future = %v, %v; want version %d at once", nm4, err, nm3.Version)
	}
	if err := b.client.Heartbeat(ctx); err != nil {
		t.Errorf("heartbeat: %v", err)
	}
	tc.stop()
}

func TestConcurrentJoinsGetDistinctAddresses(t *testing.T) {
	tc := startDefault(t)
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	const n = 200
	var wg sync.WaitGroup
	ips := make([]netip.Addr, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := tc.joinReq(context.Background(), tok, fmt.Sprintf("node-%d", i), newKey(t))
			errs[i] = err
			if err == nil {
				ips[i] = resp.IP
			}
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("join node-%d: %v", i, errs[i])
		}
		if j, dup := seen[ips[i]]; dup {
			t.Fatalf("node-%d and node-%d both got %s", i, j, ips[i])
		}
		seen[ips[i]] = i
	}
	nodes, err := tc.admin.Nodes(context.Background())
	if err != nil || len(nodes) != n {
		t.Fatalf("nodes list = %d nodes, %v; want %d", len(nodes), err, n)
	}
}

func TestSingleUseTokenUnderConcurrentJoins(t *testing.T) {
	tc := startDefault(t)
	tok := tc.token(t, api.CreateTokenRequest{})
	const n = 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := tc.joinReq(context.Background(), tok, fmt.Sprintf("racer-%d", i), newKey(t))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case apiCode(err) == api.CodeTokenInvalid:
				refused++
			default:
				t.Errorf("join racer-%d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || refused != n-1 {
		t.Fatalf("single-use token: %d joins succeeded, %d refused; want 1 and %d", ok, refused, n-1)
	}
	toks, err := tc.admin.Tokens(context.Background())
	if err != nil || len(toks) != 1 || toks[0].Uses != 1 {
		t.Fatalf("tokens = %+v, %v; want one token with 1 use", toks, err)
	}
}

func TestRefusedTokens(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	valid := tc.token(t, api.CreateTokenRequest{Reusable: true})
	parsed, _ := jointoken.Parse(valid)

	expired := tc.token(t, api.CreateTokenRequest{Expiry: api.Duration(time.Millisecond)})
	revoked := tc.token(t, api.CreateTokenRequest{Reusable: true})
	rt, _ := jointoken.Parse(revoked)
	if err := tc.admin.RevokeToken(ctx, rt.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	used := tc.token(t, api.CreateTokenRequest{})
	tc.join(t, used, "first")
	time.Sleep(5 * time.Millisecond)

	wrongSecret, _ := jointoken.New(parsed.Pin)
	wrongSecret.ID = parsed.ID
	unknown, _ := jointoken.New(parsed.Pin)
	otherPin, _ := jointoken.New("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	otherPin.ID, otherPin.Secret = parsed.ID, parsed.Secret

	for _, tt := range []struct{ name, token string }{
		{"expired", expired},
		{"revoked", revoked},
		{"used single-use", used},
		{"wrong secret", wrongSecret.String()},
		{"unknown id", unknown.String()},
		{"other registry's pin", otherPin.String()},
		{"malformed", "tm1.nope"},
		{"empty", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, perr := jointoken.Parse(tt.token); perr != nil {
				// regclient cannot sign with it; the registry refuses
				// it as well.
				status, e := rawJoin(t, tc, map[string]any{"protocol_version": api.ProtocolVersion, "token": tt.token,
					"name": "intruder", "public_key": newKey(t).Public()})
				if status != 401 || e.Code != api.CodeTokenInvalid {
					t.Fatalf("join = %d %s, want 401 %s", status, e.Code, api.CodeTokenInvalid)
				}
				return
			}
			_, err := tc.joinReq(ctx, tt.token, "intruder", newKey(t))
			if apiCode(err) != api.CodeTokenInvalid || apiStatus(err) != 401 {
				t.Fatalf("join = %v, want 401 %s", err, api.CodeTokenInvalid)
			}
		})
	}
	nodes, _ := tc.admin.Nodes(ctx)
	if len(nodes) != 1 {
		t.Fatalf("after refused joins: %d nodes, want 1", len(nodes))
	}
	if err := tc.admin.RevokeToken(ctx, "AAAAAAAAAAAA"); apiStatus(err) != 404 {
		t.Errorf("revoke unknown token = %v, want 404", err)
	}
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	tc := start(t, cfg, coordinator.Options{})
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	single := tc.token(t, api.CreateTokenRequest{})
	a := tc.join(t, tok, "alpha")
	b := tc.join(t, tok, "bravo")
	nm, err := a.client.Netmap(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	mesh, pin := tc.MeshID(), tc.Pin()
	tc.stop()

	tc2 := start(t, cfg, coordinator.Options{})
	if tc2.MeshID() != mesh || tc2.Pin() != pin {
		t.Fatalf("after restart mesh %s pin %s, want %s %s", tc2.MeshID(), tc2.Pin(), mesh, pin)
	}
	// Same credentials work against the new process (new port).
	a.client.BaseURL, b.client.BaseURL = tc2.URL(), tc2.URL()
	nm2, err := a.client.Netmap(context.Background(), 0, 0)
	if err != nil {
		t.Fatalf("netmap after restart: %v", err)
	}
	if nm2.Version < nm.Version || nm2.Self.IP != a.join.IP || peerNames(nm2)["bravo"].IP != b.join.IP {
		t.Fatalf("netmap after restart: version %d (was %d) self %s peers %v", nm2.Version, nm.Version, nm2.Self.IP, peerNames(nm2))
	}
	// Tokens survive: the single-use one still admits exactly one node.
	c := tc2.join(t, single, "charlie")
	if _, err := tc2.joinReq(context.Background(), single, "delta", newKey(t)); apiCode(err) != api.CodeTokenInvalid {
		t.Fatalf("second use of single-use token after restart = %v, want token_invalid", err)
	}
	// Re-joining with the same key keeps the address (and the node ID).
	resp, err := tc2.joinReq(context.Background(), tok, "alpha-renamed", a.key)
	if err != nil {
		t.Fatal(err)
	}
	if resp.IP != a.join.IP || resp.NodeID != a.join.NodeID || resp.IP == c.join.IP {
		t.Fatalf("rejoin = %s %s, want %s %s", resp.IP, resp.NodeID, a.join.IP, a.join.NodeID)
	}
	// The old credential was replaced.
	if _, err := a.client.Netmap(context.Background(), 0, 0); apiStatus(err) != 401 {
		t.Fatalf("old credential after rejoin = %v, want 401", err)
	}
}

func TestRemoveAndLeave(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	a := tc.join(t, tok, "alpha")
	b := tc.join(t, tok, "bravo")
	c := tc.join(t, tok, "charlie")
	nm, err := a.client.Netmap(ctx, 0, 0)
	if err != nil || len(nm.Peers) != 2 {
		t.Fatalf("netmap = %v, %v; want 2 peers", nm, err)
	}

	// bravo is removed while it is watching: its watch ends in 401.
	watchErr := make(chan error, 1)
	go func() {
		_, err := b.client.Netmap(ctx, nm.Version, 20*time.Second)
		watchErr <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := tc.admin.RemoveNode(ctx, "bravo"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := <-watchErr; apiStatus(err) != 401 {
		t.Fatalf("removed node's watch = %v, want 401", err)
	}
	if err := b.client.Heartbeat(ctx); apiStatus(err) != 401 {
		t.Fatalf("removed node's heartbeat = %v, want 401", err)
	}
	nm2 := a.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { _, ok := peerNames(nm)["bravo"]; return !ok })
	if len(nm2.Peers) != 1 {
		t.Fatalf("after remove: peers %v, want only charlie", peerNames(nm2))
	}
	if err := tc.admin.RemoveNode(ctx, "bravo"); apiStatus(err) != 404 {
		t.Errorf("remove twice = %v, want 404", err)
	}

	// charlie leaves by itself.
	if err := c.client.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	if _, err := c.client.Netmap(ctx, 0, 0); apiStatus(err) != 401 {
		t.Fatalf("netmap after leave = %v, want 401", err)
	}
	a.waitNetmap(t, nm2.Version, func(nm *api.Netmap) bool { return len(nm.Peers) == 0 })

	// Removing by ID works too; a re-join with the same key gets the old IP.
	resp, err := tc.joinReq(ctx, tok, "bravo", b.key)
	if err != nil || resp.IP != b.join.IP {
		t.Fatalf("rejoin after removal = %v, %v; want ip %s", resp, err, b.join.IP)
	}
	if err := tc.admin.RemoveNode(ctx, resp.NodeID); err != nil {
		t.Fatalf("remove by id: %v", err)
	}
}

func TestRangeFull(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MeshCIDR = "10.9.0.0/30" // two hosts
	tc := start(t, cfg, coordinator.Options{})
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	a := tc.join(t, tok, "one")
	tc.join(t, tok, "two")
	_, err := tc.joinReq(ctx, tok, "three", newKey(t))
	if apiCode(err) != api.CodeRangeFull {
		t.Fatalf("third join in a /30 = %v, want %s", err, api.CodeRangeFull)
	}
	// Removing a node frees its address for a new key once the range needs it.
	if err := tc.admin.RemoveNode(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	resp, err := tc.joinReq(ctx, tok, "three", newKey(t))
	if err != nil || resp.IP != a.join.IP {
		t.Fatalf("join after removal = %v, %v; want %s", resp, err, a.join.IP)
	}
}

func TestNameClash(t *testing.T) {
	tc := startDefault(t)
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	tc.join(t, tok, "alpha")
	_, err := tc.joinReq(context.Background(), tok, "ALPHA", newKey(t))
	if apiCode(err) != api.CodeConflict || apiStatus(err) != 409 {
		t.Fatalf("join with a taken name = %v, want 409 conflict", err)
	}
	toks, _ := tc.admin.Tokens(context.Background())
	if toks[0].Uses != 1 {
		t.Errorf("refused join counted a use: uses = %d, want 1", toks[0].Uses)
	}
}

func TestExtraHandlersRelaysAndMetrics(t *testing.T) {
	relays := []api.Relay{{ID: "r1", URL: "wss://relay.example:8443/relay"}}
	var hits sync.Map
	opts := coordinator.Options{
		Relays:     relays,
		DNSServers: []netip.Addr{netip.MustParseAddr("100.64.0.53")},
		Handlers: map[string]http.Handler{
			api.PathRelay: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Store("relay", true); w.WriteHeader(299) }),
		},
	}
	tc := start(t, testConfig(t, t.TempDir()), opts)
	tok := tc.token(t, api.CreateTokenRequest{})
	a := tc.join(t, tok, "alpha")
	nm, err := a.client.Netmap(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(nm.Relays) != 1 || nm.Relays[0] != relays[0] || len(nm.DNS.Servers) != 1 {
		t.Fatalf("netmap relays %v dns %v, want %v and one server", nm.Relays, nm.DNS, relays)
	}
	resp, err := tc.hc.Get(tc.URL() + api.PathRelay)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, ok := hits.Load("relay"); !ok || resp.StatusCode != 299 {
		t.Fatalf("relay handler not reached: status %d", resp.StatusCode)
	}

	body := get(t, tc, api.PathMetrics)
	for _, want := range []string{
		`tunnelmesh_registry_joins_total{result="ok"} 1`,
		`tunnelmesh_registry_nodes 1`,
		`tunnelmesh_registry_watchers 0`,
		`tunnelmesh_registry_request_duration_seconds_bucket{code="200",route="netmap"`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !bytes.Contains(get(t, tc, api.PathHealth), []byte(`"status":"ok"`)) {
		t.Errorf("/healthz not ok")
	}
	info, err := regclient.Info(context.Background(), tc.hc, tc.URL())
	if err != nil || info.MeshID != tc.MeshID() || info.ProtocolVersions[0] != api.ProtocolVersion {
		t.Fatalf("info = %+v, %v", info, err)
	}
}

func get(t *testing.T, tc *testCoord, path string) []byte {
	t.Helper()
	resp, err := tc.hc.Get(tc.URL() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return b
}

func TestJoinRateLimit(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.JoinFailureBurst = 3
	cfg.JoinFailuresPerMinute = 1
	tc := start(t, cfg, coordinator.Options{})
	ctx := context.Background()
	good := tc.token(t, api.CreateTokenRequest{Reusable: true})
	// Successful joins do not count.
	for i := range 5 {
		tc.join(t, good, fmt.Sprintf("ok-%d", i))
	}
	p, _ := jointoken.Parse(good)
	for i := range 3 {
		guess, _ := jointoken.New(p.Pin)
		if _, err := tc.joinReq(ctx, guess.String(), "guess", newKey(t)); apiCode(err) != api.CodeTokenInvalid {
			t.Fatalf("guess %d = %v, want token_invalid", i, err)
		}
	}
	// Over the limit even a good token is refused, and nothing changes.
	_, err := tc.joinReq(ctx, good, "late", newKey(t))
	if apiCode(err) != api.CodeRateLimited || apiStatus(err) != 429 {
		t.Fatalf("join over the limit = %v, want 429 rate_limited", err)
	}
	if nodes, _ := tc.admin.Nodes(ctx); len(nodes) != 5 {
		t.Fatalf("%d nodes after rate-limited join, want 5", len(nodes))
	}
	if !bytes.Contains(get(t, tc, api.PathMetrics), []byte(`tunnelmesh_registry_joins_total{result="rate_limited"} 1`)) {
		t.Errorf("rate-limited join not counted in metrics")
	}
}

func TestEndpointChangeRateLimit(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	a := tc.join(t, tok, "alpha")
	b := tc.join(t, tok, "bravo")
	report := func(n *testNode, port uint16) error {
		return n.client.ReportEndpoints(ctx, api.EndpointsRequest{Endpoints: []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)}})
	}
	// The burst of changes is allowed; identical reports never count.
	for i := range 10 {
		if err := report(a, uint16(1000+i)); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		// The same request signed in the same millisecond is a replay.
		time.Sleep(2 * time.Millisecond)
		if err := report(a, uint16(1000+i)); err != nil {
			t.Fatalf("repeat of change %d: %v", i, err)
		}
	}
	v := tc.NetmapVersion()
	if err := report(a, 2000); apiCode(err) != api.CodeRateLimited || apiStatus(err) != 429 {
		t.Fatalf("change beyond the burst = %v, want 429 rate_limited", err)
	}
	if tc.NetmapVersion() != v {
		t.Fatalf("refused change bumped the version %d -> %d", v, tc.NetmapVersion())
	}
	if err := report(b, 3000); err != nil {
		t.Fatalf("other node limited by alpha: %v", err)
	}
	nm, err := b.client.Netmap(ctx, 0, 0)
	if err != nil || peerNames(nm)["alpha"].Endpoints[0].Port() != 1009 {
		t.Fatalf("alpha as bravo sees it = %+v, %v; want the last accepted endpoint", peerNames(nm)["alpha"], err)
	}
}
