package node

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/engine"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/tunif"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
)

// runMetricsNode runs a node joined to fake with MetricsListen listen and
// returns a function that stops it.
func runMetricsNode(t *testing.T, fake *registrytest.Fake, name, listen string) func() {
	t.Helper()
	dir := state.Dir(filepath.Join(t.TempDir(), "st"))
	key, keyFile, err := dir.LoadKey("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := Join(ctx, JoinRequest{Coordinator: fake.URL, Token: fake.CreateToken(false), Name: name, Key: key, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	plane := newFakePlane()
	n, err := New(Config{
		Dir: dir, State: st, Key: key, Interface: "tmmet0", MTU: 1400, MetricsListen: listen,
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
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func registryServices(fake *registrytest.Fake, name string) ([]api.Service, bool) {
	for _, nd := range fake.Nodes() {
		if nd.Name == name {
			return nd.Services, !nd.LastSeen.IsZero()
		}
	}
	return nil, false
}

// TestNodePublishesMetrics: metrics served where the mesh reaches them are
// published as the service metrics-agent with their port; metrics on the
// mesh address that cannot be served there do not stop the node and are
// not published.
func TestNodePublishesMetrics(t *testing.T) {
	fake := registrytest.New(netip.MustParsePrefix("100.64.0.0/24"))
	defer fake.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	stop := runMetricsNode(t, fake, "m1", ":"+strconv.Itoa(port))
	want := []api.Service{{Name: MetricsService, Protocol: "tcp", Port: uint16(port)}}
	deadline := time.Now().Add(time.Minute)
	for {
		if svcs, _ := registryServices(fake, "m1"); slices.Equal(svcs, want) {
			break
		}
		if time.Now().After(deadline) {
			svcs, _ := registryServices(fake, "m1")
			t.Fatalf("m1's services at the registry = %v, want %v", svcs, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics = %v, %v", resp, err)
	}
	resp.Body.Close()
	stop()

	// The fake interface has no address: the mesh address cannot be bound.
	stop = runMetricsNode(t, fake, "m2", "mesh:9101")
	deadline = time.Now().Add(time.Minute)
	for {
		if _, reported := registryServices(fake, "m2"); reported {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("m2 never reported to the registry")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a few endpoint reports
	if svcs, _ := registryServices(fake, "m2"); len(svcs) != 0 {
		t.Fatalf("m2 published %v without serving metrics", svcs)
	}
	stop()
}
