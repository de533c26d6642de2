package coordinator_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/relay/client"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// relayClient connects key to the coordinator's relay (pinned by the
// coordinator's pin) and returns the client and a channel of packets.
func relayClient(t *testing.T, tc *testCoord, nm *api.Netmap, key nodekey.PrivateKey) (*client.Client, chan string) {
	t.Helper()
	got := make(chan string, 16)
	r := nm.Relays[0]
	url := r.URL
	if url == "" {
		url = "wss://" + strings.TrimPrefix(tc.URL(), "https://") + api.PathRelay
	}
	c, err := client.New(client.Config{URL: url, Key: key, TLSPin: r.TLSPin, RelayID: r.ID,
		Proxy: client.ProxyDirect, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger:   slog.New(slog.DiscardHandler),
		OnPacket: func(src nodekey.PublicKey, pkt []byte) { got <- string(pkt) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, got
}

func TestCoordinatorRelay(t *testing.T) {
	tc := startDefault(t)
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	a, b := tc.join(t, tok, "alpha"), tc.join(t, tok, "bravo")
	nm, err := a.client.Netmap(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(nm.Relays) != 1 || nm.Relays[0].ID != "coordinator" || nm.Relays[0].TLSPin != tc.Pin() {
		t.Fatalf("netmap relays = %+v, want the coordinator's relay with its pin", nm.Relays)
	}
	if nm.Self.HomeRelay != "coordinator" || len(nm.Peers) != 1 || nm.Peers[0].HomeRelay != "coordinator" {
		t.Fatalf("home relays: self %q, peers %+v", nm.Self.HomeRelay, nm.Peers)
	}
	ca, _ := relayClient(t, tc, nm, a.key)
	cb, gotB := relayClient(t, tc, nm, b.key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ca.WaitConnected(ctx); err != nil {
		t.Fatalf("alpha on the relay: %v", err)
	}
	if err := cb.WaitConnected(ctx); err != nil {
		t.Fatalf("bravo on the relay: %v", err)
	}
	if err := ca.Send(b.key.Public(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-gotB:
		if p != "hello" {
			t.Fatalf("bravo got %q", p)
		}
	case <-ctx.Done():
		t.Fatal("packet through the coordinator's relay never arrived")
	}

	// A key that is not a mesh node is refused.
	stranger, _ := relayClient(t, tc, nm, newKey(t))
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	if err := stranger.WaitConnected(sctx); err == nil {
		t.Fatal("a key outside the mesh got onto the relay")
	}

	// A removed node is cut off at once.
	if err := tc.admin.RemoveNode(context.Background(), "bravo"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for cb.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("removed node still on the relay")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCoordinatorRelayConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.PublicURL = "https://coord.example:8443"
	cfg.Relay.Extra = []coordinator.ExtraRelay{{ID: "eu-1", URL: "wss://relay-eu.example/relay", TLSPin: "sha256/abc"}}
	extra := api.Relay{ID: "eu-1", URL: "wss://relay-eu.example/relay", TLSPin: "sha256/abc"}
	tc := start(t, cfg, coordinator.Options{})
	tok := tc.token(t, api.CreateTokenRequest{})
	a := tc.join(t, tok, "alpha")
	nm, err := a.client.Netmap(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []api.Relay{{ID: "coordinator", URL: "wss://coord.example:8443/relay", TLSPin: tc.Pin()}, extra}
	if len(nm.Relays) != 2 || nm.Relays[0] != want[0] || nm.Relays[1] != want[1] {
		t.Fatalf("netmap relays = %+v, want %+v", nm.Relays, want)
	}

	cfg2 := testConfig(t, t.TempDir())
	cfg2.Relay.Disabled = true
	cfg2.Relay.Extra = cfg.Relay.Extra
	tc2 := start(t, cfg2, coordinator.Options{})
	b := tc2.join(t, tc2.token(t, api.CreateTokenRequest{}), "bravo")
	nm, err = b.client.Netmap(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(nm.Relays) != 1 || nm.Relays[0] != extra || nm.Self.HomeRelay != "eu-1" {
		t.Fatalf("relay disabled: relays %+v home %q", nm.Relays, nm.Self.HomeRelay)
	}
}
