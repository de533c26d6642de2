package coordinator_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/adminclient"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/config"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/pgtest"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/scrapecred"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/relay/client"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// haReplicas numbers the replicas' relay IDs.
var haReplicas int

// haConfig is a replica's configuration on the PostgreSQL database dsn,
// with a data directory of its own.
func haConfig(t *testing.T, dsn string) coordinator.Config {
	t.Helper()
	haReplicas++
	cfg, err := coordinator.ParseConfig(fmt.Appendf(nil, "listen: 127.0.0.1:0\nstun_listen: 127.0.0.1:0\ndata_dir: %s\nlog_level: debug\n"+
		"join_failure_burst: 1000\nstore: postgres\npostgres_dsn: %q\nrelay: {id: replica-%d}\n", t.TempDir(), dsn, haReplicas))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startReplicas runs two registry replicas on one fresh database.
func startReplicas(t *testing.T) (*testCoord, *testCoord) {
	t.Helper()
	dsn := pgtest.NewDB(t)
	a := start(t, haConfig(t, dsn), coordinator.Options{})
	b := start(t, haConfig(t, dsn), coordinator.Options{})
	return a, b
}

// joinWithTokenPin joins through tc trusting only the pin the token
// carries (as a node does), not tc's own.
func joinWithTokenPin(t *testing.T, tc *testCoord, token, name string) *testNode {
	t.Helper()
	tok, err := jointoken.Parse(token)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	hc := regclient.NewHTTPClient(tok.Pin)
	defer hc.CloseIdleConnections()
	resp, err := regclient.Join(context.Background(), hc, tc.URL(), api.JoinRequest{Token: token, Name: name, PublicKey: key.Public()}, key)
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	return tc.nodeClient(t, key, resp)
}

// Two replicas on one database are one mesh: the same mesh, TLS pin and
// admin credential; a token made on one admits on the other; every change
// made on one (join, endpoint update, removal with its PSK rotation,
// leave, policy apply) reaches the other's netmap watchers, and token uses
// and revocations hold on both.
func TestHAReplicasShareState(t *testing.T) {
	ctx := context.Background()
	a, b := startReplicas(t)
	if a.MeshID() != b.MeshID() || a.Pin() != b.Pin() || a.AdminCredential() != b.AdminCredential() {
		t.Fatalf("replicas differ: mesh %s/%s pin %s/%s same admin credential %v",
			a.MeshID(), b.MeshID(), a.Pin(), b.Pin(), a.AdminCredential() == b.AdminCredential())
	}
	tok := a.token(t, api.CreateTokenRequest{Reusable: true})
	w := joinWithTokenPin(t, b, tok, "watcher") // made on A, used on B
	nm := w.waitNetmap(t, 0, func(*api.Netmap) bool { return true })

	// A join on A reaches a watcher on B.
	type result struct {
		nm  *api.Netmap
		err error
	}
	watch := func(since uint64, fn func(*api.Netmap) bool) <-chan result {
		out := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			for {
				got, err := w.client.Netmap(ctx, since, 20*time.Second)
				if err == regclient.ErrNotModified {
					continue
				}
				if err != nil || fn(got) {
					out <- result{got, err}
					return
				}
				since = got.Version
			}
		}()
		return out
	}
	wait := func(what string, ch <-chan result, since time.Time) *api.Netmap {
		t.Helper()
		r := <-ch
		if r.err != nil {
			t.Fatalf("%s: watcher on B: %v", what, r.err)
		}
		// Measured, not asserted (the machine may be busy); the ceiling
		// is the watch's 30s.
		t.Logf("%s on replica A reached a netmap watcher on replica B in %v", what, time.Since(since).Round(time.Microsecond))
		return r.nm
	}
	ch := watch(nm.Version, func(nm *api.Netmap) bool { _, ok := peerNames(nm)["joiner"]; return ok })
	time.Sleep(100 * time.Millisecond) // the watch is waiting
	t0 := time.Now()
	x := a.join(t, tok, "joiner")
	nm = wait("join", ch, t0)

	// Endpoint update on A.
	ep := netip.MustParseAddrPort("192.0.2.10:51820")
	ch = watch(nm.Version, func(nm *api.Netmap) bool {
		p := peerNames(nm)["joiner"]
		return len(p.Endpoints) == 1 && p.Endpoints[0] == ep
	})
	time.Sleep(100 * time.Millisecond)
	t0 = time.Now()
	if err := x.client.ReportEndpoints(ctx, api.EndpointsRequest{Endpoints: []netip.AddrPort{ep}}); err != nil {
		t.Fatal(err)
	}
	nm = wait("endpoint update", ch, t0)

	// Removal on A with B's admin credential: the PSK rotates.
	oldPSK := nm.PSK.Current
	ch = watch(nm.Version, func(nm *api.Netmap) bool { _, ok := peerNames(nm)["joiner"]; return !ok })
	time.Sleep(100 * time.Millisecond)
	t0 = time.Now()
	adminOnA := adminclient.New(a.URL(), b.AdminCredential(), a.Pin())
	defer adminOnA.HTTP.CloseIdleConnections()
	if err := adminOnA.RemoveNode(ctx, "joiner"); err != nil {
		t.Fatal(err)
	}
	nm = wait("removal", ch, t0)
	if string(nm.PSK.Current) == string(oldPSK) || string(nm.PSK.Previous) != string(oldPSK) {
		t.Fatalf("after a removal on A the netmap on B carries PSK current changed %v, previous = old %v",
			string(nm.PSK.Current) != string(oldPSK), string(nm.PSK.Previous) == string(oldPSK))
	}
	if _, err := x.client.Netmap(ctx, 0, 0); apiStatus(err) != 401 {
		t.Fatalf("removed node on A = %v, want 401", err)
	}

	// Leave on A.
	y := a.join(t, tok, "leaver")
	nm = w.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { _, ok := peerNames(nm)["leaver"]; return ok })
	ch = watch(nm.Version, func(nm *api.Netmap) bool { _, ok := peerNames(nm)["leaver"]; return !ok })
	time.Sleep(100 * time.Millisecond)
	t0 = time.Now()
	if err := y.client.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	wait("leave", ch, t0)

	// A policy applied on A reaches the watcher on B; B lists it, and a
	// conditional apply on B against the old version conflicts.
	ch = watch(nm.Version, func(nm *api.Netmap) bool { return nm.Filter != nil && nm.Filter.PolicyVersion == 1 })
	time.Sleep(100 * time.Millisecond)
	t0 = time.Now()
	if _, err := a.admin.PutPolicy(ctx, policy.PutRequest{Policy: "rules:\n  - {name: ping, from: '*', to: '*', proto: icmp}\n"}); err != nil {
		t.Fatal(err)
	}
	wait("policy apply", ch, t0)
	if vs, err := b.admin.PolicyVersions(ctx); err != nil || len(vs) != 1 || vs[0].Version != 1 {
		t.Fatalf("policy versions on B = %+v, %v; want version 1", vs, err)
	}
	if _, err := b.admin.PutPolicy(ctx, policy.PutRequest{Policy: "rules: []\n", IfVersion: 0}); err != nil {
		t.Fatalf("apply on B after A's version 1: %v", err)
	}
	if _, err := a.admin.PutPolicy(ctx, policy.PutRequest{Policy: "rules: []\n#x\n", IfVersion: 1}); apiStatus(err) != 409 {
		t.Fatalf("apply on A if version 1 after B stored version 2 = %v, want 409", err)
	}

	// A token revoked on B is refused on A; a single-use token used on B
	// is refused on A.
	toks, err := b.admin.Tokens(ctx)
	if err != nil || len(toks) != 1 {
		t.Fatalf("tokens on B = %+v, %v", toks, err)
	}
	single := b.token(t, api.CreateTokenRequest{})
	joinWithTokenPin(t, b, single, "once")
	if _, err := a.joinReq(ctx, single, "twice", newKey(t)); apiCode(err) != api.CodeTokenInvalid {
		t.Fatalf("single-use token used on B, again on A = %v, want %s", err, api.CodeTokenInvalid)
	}
	if err := b.admin.RevokeToken(ctx, toks[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.joinReq(ctx, tok, "late", newKey(t)); apiCode(err) != api.CodeTokenInvalid {
		t.Fatalf("token revoked on B, used on A = %v, want %s", err, api.CodeTokenInvalid)
	}
}

// 200 concurrent joins split over two replicas get 200 distinct
// addresses; a single-use token raced on both replicas admits one join.
func TestHAConcurrentJoinsAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	a, b := startReplicas(t)
	replicas := []*testCoord{a, b}
	tok := a.token(t, api.CreateTokenRequest{Reusable: true})
	single := b.token(t, api.CreateTokenRequest{})
	const n = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	ips := map[netip.Addr]string{}
	singleOK := 0
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("node-%d", i)
			resp, err := replicas[i%2].joinReq(ctx, tok, name, newKey(t))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("join %s: %v", name, err)
				return
			}
			if other, dup := ips[resp.IP]; dup {
				t.Errorf("%s and %s both got %s", other, name, resp.IP)
			}
			ips[resp.IP] = name
		}()
		go func() {
			defer wg.Done()
			if i >= 30 {
				return
			}
			_, err := replicas[i%2].joinReq(ctx, single, fmt.Sprintf("racer-%d", i), newKey(t))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				singleOK++
			case apiCode(err) != api.CodeTokenInvalid:
				t.Errorf("racer-%d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if len(ips) != n || singleOK != 1 {
		t.Fatalf("%d distinct addresses for %d joins, single-use token admitted %d; want %d and 1", len(ips), n, singleOK, n)
	}
	for _, tc := range replicas {
		nodes, err := tc.admin.Nodes(ctx)
		if err != nil || len(nodes) != n+1 {
			t.Fatalf("nodes list = %d nodes, %v; want %d", len(nodes), err, n+1)
		}
	}
}

// A signed node request accepted by one replica cannot be replayed against
// the other (the replay cache is in the shared store).
func TestHAReplayAcrossReplicasRefused(t *testing.T) {
	a, b := startReplicas(t)
	tok := a.token(t, api.CreateTokenRequest{})
	n := a.join(t, tok, "alpha")
	body := []byte(`{}`)
	req := signed(t, a, "POST", api.PathHeartbeat, body, n.join.Credential, n.key, time.Now())
	header := req.Header.Clone()
	if status, e := rawCall(t, a, req); status != http.StatusNoContent {
		t.Fatalf("genuine heartbeat on A: %d %q", status, e.Error)
	}
	// B's netmap knows the node (it joined on A) before the replay is
	// tried.
	deadline := time.Now().Add(30 * time.Second)
	for b.NetmapVersion() < a.NetmapVersion() {
		if time.Now().After(deadline) {
			t.Fatalf("B's netmap version %d stays behind A's %d", b.NetmapVersion(), a.NetmapVersion())
		}
		time.Sleep(20 * time.Millisecond)
	}
	replay := newReq(t, b, "POST", api.PathHeartbeat, "application/json", body)
	replay.Header = header
	if status, e := rawCall(t, b, replay); status != http.StatusUnauthorized || !strings.Contains(e.Error, "replayed") {
		t.Fatalf("heartbeat accepted by A replayed on B: %d %q, want 401 replayed", status, e.Error)
	}
	n.client.BaseURL = b.URL()
	if err := n.client.Heartbeat(context.Background()); err != nil {
		t.Fatalf("fresh heartbeat on B: %v", err)
	}
}

// A scrape token made on one replica opens the other's service discovery;
// revoked there, it stops working on the first within
// scrapecred.ReloadInterval.
func TestHAScrapeTokensShared(t *testing.T) {
	ctx := context.Background()
	a, b := startReplicas(t)
	resp, err := a.admin.CreateScrapeToken(ctx, scrapecred.CreateRequest{Name: "prom"})
	if err != nil {
		t.Fatal(err)
	}
	sd := func(tc *testCoord) int {
		req, _ := http.NewRequest(http.MethodGet, tc.URL()+scrapecred.PathSD, nil)
		req.Header.Set("Authorization", "Bearer "+resp.Token)
		r, err := tc.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if code := sd(b); code != http.StatusOK {
		t.Fatalf("token made on A, service discovery on B: %d, want 200", code)
	}
	if code := sd(a); code != http.StatusOK {
		t.Fatalf("service discovery on A: %d, want 200", code)
	}
	if err := b.admin.RevokeScrapeToken(ctx, resp.Info.ID); err != nil {
		t.Fatal(err)
	}
	if code := sd(b); code != http.StatusUnauthorized {
		t.Fatalf("revoked on B, service discovery on B: %d, want 401", code)
	}
	deadline := time.Now().Add(scrapecred.ReloadInterval + 30*time.Second)
	for sd(a) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatalf("token revoked on B still opens A after %v", scrapecred.ReloadInterval+30*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A node that only watches its netmap on one replica stays online in the
// netmaps of the other past online_timeout (being online is known to every
// replica).
func TestHAOnlineAcrossReplicas(t *testing.T) {
	dsn := pgtest.NewDB(t)
	cfgA, cfgB := haConfig(t, dsn), haConfig(t, dsn)
	cfgA.OnlineTimeout, cfgB.OnlineTimeout = config5s, config5s
	a := start(t, cfgA, coordinator.Options{})
	b := start(t, cfgB, coordinator.Options{})
	tok := a.token(t, api.CreateTokenRequest{Reusable: true})
	onA := a.join(t, tok, "on-a")
	onB := b.join(t, tok, "on-b")
	// on-b watches on B only (no heartbeat) for twice online_timeout.
	ctx := context.Background()
	var since uint64
	for end := time.Now().Add(2 * time.Duration(config5s)); time.Now().Before(end); {
		nm, err := onB.client.Netmap(ctx, since, time.Second)
		if err == nil {
			since = nm.Version
		} else if err != regclient.ErrNotModified {
			t.Fatal(err)
		}
	}
	nm, err := onA.client.Netmap(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p := peerNames(nm)["on-b"]; !p.Online {
		t.Fatalf("on-b, watching on B for %v, is offline in A's netmap (last seen %v)", 2*time.Duration(config5s), p.LastSeen)
	}
}

const config5s = config.Duration(5 * time.Second)

// Two replicas, nodes spread over them; one replica stops. The nodes that
// used it turn to the other (as a failing-over node would) and get their
// netmaps there; joins, removals and policy applies go on; the stopped
// replica starts again and serves the state it missed.
func TestHAReplicaStopsAndReturns(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	cfgA := haConfig(t, dsn)
	a := start(t, cfgA, coordinator.Options{})
	b := start(t, haConfig(t, dsn), coordinator.Options{})
	tok := a.token(t, api.CreateTokenRequest{Reusable: true})
	var nodes []*testNode
	for i := range 6 {
		nodes = append(nodes, []*testCoord{a, b}[i%2].join(t, tok, fmt.Sprintf("n%d", i)))
	}
	for b.NetmapVersion() < a.NetmapVersion() {
		time.Sleep(10 * time.Millisecond)
	}
	a.stop()

	// The nodes of A turn to B.
	t0 := time.Now()
	for i, n := range nodes {
		if i%2 == 0 {
			n.client.BaseURL = b.URL()
			n.client.HTTP = b.hc
		}
		n.waitNetmap(t, 0, func(nm *api.Netmap) bool { return len(nm.Peers) == 5 })
	}
	t.Logf("every node of the stopped replica got its netmap from the other within %v", time.Since(t0).Round(time.Millisecond))
	// Their home relay is now B's: peers send their relayed traffic there.
	nodes[1].waitNetmap(t, 0, func(nm *api.Netmap) bool {
		for _, p := range nm.Peers {
			if p.HomeRelay != nm.Self.HomeRelay {
				return false
			}
		}
		return true
	})

	// Changes go on through B.
	late := b.join(t, tok, "late")
	if err := b.admin.RemoveNode(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.admin.PutPolicy(ctx, policy.PutRequest{Policy: "rules:\n  - {name: ping, from: '*', to: '*', proto: icmp}\n"}); err != nil {
		t.Fatal(err)
	}
	want := func(nm *api.Netmap) bool {
		p := peerNames(nm)
		_, removed := p["n1"]
		_, joined := p["late"]
		return joined && !removed && nm.Filter != nil && nm.Filter.PolicyVersion == 1
	}
	nodes[0].waitNetmap(t, 0, want)

	// A returns (same data_dir, same database) and serves what it missed.
	a2 := start(t, cfgA, coordinator.Options{})
	if a2.Pin() != b.Pin() || a2.AdminCredential() != b.AdminCredential() {
		t.Fatalf("returned replica: same pin %v, same admin credential %v",
			a2.Pin() == b.Pin(), a2.AdminCredential() == b.AdminCredential())
	}
	// Its own return is a change (its URL joins the netmap's registries),
	// so B may move on while A starts: the two meet on one version.
	for deadline := time.Now().Add(30 * time.Second); a2.NetmapVersion() != b.NetmapVersion(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("returned replica at netmap version %d, the other at %d after 30s", a2.NetmapVersion(), b.NetmapVersion())
		}
	}
	late.client.BaseURL, late.client.HTTP = a2.URL(), a2.hc
	late.waitNetmap(t, 0, func(nm *api.Netmap) bool {
		_, ok := peerNames(nm)["n0"]
		return ok && nm.Filter != nil && nm.Filter.PolicyVersion == 1
	})
	// And follows B's changes again.
	v := a2.NetmapVersion()
	b.join(t, tok, "later")
	late.waitNetmap(t, v, func(nm *api.Netmap) bool { _, ok := peerNames(nm)["later"]; return ok })
}

// relayByID connects key to the relay id of nm (as a node does: the
// relay's URL, else its coordinator's at api.PathRelay).
func relayByID(t *testing.T, tc *testCoord, nm *api.Netmap, id string, key nodekey.PrivateKey) (*client.Client, chan string) {
	t.Helper()
	for _, r := range nm.Relays {
		if r.ID == id {
			one := *nm
			one.Relays = []api.Relay{r}
			return relayClient(t, tc, &one, key)
		}
	}
	t.Fatalf("netmap lists no relay %q: %+v", id, nm.Relays)
	return nil, nil
}

// A node watching replica A and a node watching replica B talk through
// the relays: every netmap lists both replicas' relays and each node's
// home relay is its own replica's, so the node on A sends to the node on B
// through B's relay (where B's node listens), as a node sends to each
// peer's home relay.
func TestHARelayAcrossReplicas(t *testing.T) {
	a, b := startReplicas(t)
	tok := a.token(t, api.CreateTokenRequest{Reusable: true})
	x := a.join(t, tok, "x-on-a")
	y := b.join(t, tok, "y-on-b")
	y.waitNetmap(t, 0, func(*api.Netmap) bool { return true }) // y watches B
	nmX := x.waitNetmap(t, 0, func(nm *api.Netmap) bool {
		return nm.Self.HomeRelay != "" && peerNames(nm)["y-on-b"].HomeRelay != "" && peerNames(nm)["y-on-b"].HomeRelay != nm.Self.HomeRelay
	})
	relayA, relayB := nmX.Self.HomeRelay, peerNames(nmX)["y-on-b"].HomeRelay
	nmY := y.waitNetmap(t, 0, func(nm *api.Netmap) bool { return peerNames(nm)["x-on-a"].HomeRelay == relayA })
	if nmY.Self.HomeRelay != relayB || len(nmX.Relays) != 2 || len(nmY.Relays) != 2 {
		t.Fatalf("home relays x %q y %q; relays listed on A %+v, on B %+v", relayA, nmY.Self.HomeRelay, nmX.Relays, nmY.Relays)
	}
	// y listens on its home relay (B's); x sends to y's home relay.
	_, gotY := relayByID(t, b, nmY, relayB, y.key)
	cx, _ := relayByID(t, a, nmX, relayB, x.key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cx.WaitConnected(ctx); err != nil {
		t.Fatalf("x (on A) to B's relay: %v", err)
	}
	for {
		cx.Send(y.key.Public(), []byte("hello across replicas"))
		select {
		case m := <-gotY:
			if m != "hello across replicas" {
				t.Fatalf("y got %q", m)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("x's datagram through B's relay did not reach y within 30s")
		}
	}
}

// A node knows every replica from its netmap and fails over by itself:
// the replica it joined through and watches stops, and its watch gets
// netmaps from the other within 5 s (the other replica makes itself the
// node's home relay at the first watch, a change the node sees at once).
func TestHANodeFailsOverToOtherReplica(t *testing.T) {
	a, b := startReplicas(t)
	tok := a.token(t, api.CreateTokenRequest{Reusable: true})
	n := joinWithTokenPin(t, a, tok, "roamer")
	b.join(t, tok, "stayer")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type got struct {
		nm *api.Netmap
		at time.Time
	}
	netmaps := make(chan got, 64)
	done := make(chan error, 1)
	go func() {
		done <- n.client.Watch(ctx, 0, func(nm *api.Netmap) error {
			netmaps <- got{nm, time.Now()}
			return nil
		}, func(err error) { t.Logf("watch: %v", err) })
	}()
	defer func() {
		cancel()
		<-done
	}()
	want := []string{strings.TrimSuffix(a.URL(), "/"), strings.TrimSuffix(b.URL(), "/")}
	slices.Sort(want)
	var homeA string
	for homeA == "" {
		select {
		case g := <-netmaps:
			if slices.Equal(g.nm.Registries, want) && g.nm.Self.HomeRelay != "" {
				homeA = g.nm.Self.HomeRelay
			}
		case <-ctx.Done():
			t.Fatalf("no netmap listing both replicas %v", want)
		}
	}
	if got := n.client.Replicas(); len(got) != 2 || got[0] != a.URL() {
		t.Fatalf("client replicas = %v, want A first, then B", got)
	}

	stopped := time.Now()
	a.stop()
	for {
		select {
		case g := <-netmaps:
			if g.nm.Self.HomeRelay == homeA {
				continue // answered by A before it stopped
			}
			took := g.at.Sub(stopped)
			t.Logf("netmap from the other replica %v after the node's replica stopped", took.Round(time.Millisecond))
			if n.client.Current() != b.URL() {
				t.Fatalf("client uses %s, want B %s", n.client.Current(), b.URL())
			}
			if took > 5*time.Second {
				t.Fatalf("netmap from the other replica %v after the stop, want within 5s", took)
			}
			if _, ok := peerNames(g.nm)["stayer"]; !ok {
				t.Fatalf("netmap from B lacks the peer stayer: %+v", g.nm.Peers)
			}
			// Changes made on B keep reaching the node.
			b.join(t, tok, "newcomer")
			for {
				select {
				case g := <-netmaps:
					if _, ok := peerNames(g.nm)["newcomer"]; ok {
						return
					}
				case <-ctx.Done():
					t.Fatal("a join on B did not reach the failed-over node")
				}
			}
		case <-ctx.Done():
			t.Fatal("no netmap from the other replica after the node's replica stopped")
		}
	}
}

// A replica stopped for good leaves the netmaps' registries and relays
// after replica_expiry; when it returns it is listed again.
func TestHAStoppedReplicaExpires(t *testing.T) {
	dsn := pgtest.NewDB(t)
	cfgA, cfgB := haConfig(t, dsn), haConfig(t, dsn)
	cfgA.ReplicaExpiry = config.Duration(2 * time.Second)
	cfgB.ReplicaExpiry = config.Duration(2 * time.Second)
	a := start(t, cfgA, coordinator.Options{})
	b := start(t, cfgB, coordinator.Options{})
	tok := b.token(t, api.CreateTokenRequest{Reusable: true})
	n := b.join(t, tok, "watcher")
	lists := func(nm *api.Netmap, url, relayID string) (bool, bool) {
		urlListed, relayListed := slices.Contains(nm.Registries, url), false
		for _, r := range nm.Relays {
			relayListed = relayListed || r.ID == relayID
		}
		return urlListed, relayListed
	}
	aURL, aRelay := a.URL(), cfgA.Relay.ID
	// Both replicas keep refreshing: A stays listed past several expiries.
	time.Sleep(3 * time.Duration(cfgA.ReplicaExpiry))
	nm := n.waitNetmap(t, 0, func(*api.Netmap) bool { return true })
	if u, r := lists(nm, aURL, aRelay); !u || !r {
		t.Fatalf("running replica A dropped from the netmap (url listed %v, relay listed %v): %v %+v", u, r, nm.Registries, nm.Relays)
	}
	a.stop()
	t0 := time.Now()
	n.waitNetmap(t, 0, func(nm *api.Netmap) bool { u, r := lists(nm, aURL, aRelay); return !u && !r })
	t.Logf("stopped replica unlisted after %v (replica_expiry %v)", time.Since(t0).Round(time.Millisecond), time.Duration(cfgA.ReplicaExpiry))
	if u, _ := lists(n.waitNetmap(t, 0, func(*api.Netmap) bool { return true }), b.URL(), cfgB.Relay.ID); !u {
		t.Fatal("the running replica B was unlisted too")
	}
	a2 := start(t, cfgA, coordinator.Options{})
	n.waitNetmap(t, 0, func(nm *api.Netmap) bool { u, r := lists(nm, a2.URL(), aRelay); return u && r })
}
