package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/engine"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/filter"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/tunif"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
)

// fakePlane records configurations and answers pings for known peers.
type fakePlane struct {
	mu      sync.Mutex
	configs []engine.Config
	changed chan struct{}
	closed  bool
}

func newFakePlane() *fakePlane { return &fakePlane{changed: make(chan struct{}, 100)} }

func (p *fakePlane) Reconfig(c engine.Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("closed")
	}
	p.configs = append(p.configs, c)
	select {
	case p.changed <- struct{}{}:
	default:
	}
	return nil
}

func (p *fakePlane) last() engine.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.configs[len(p.configs)-1]
}

func (p *fakePlane) Status() engine.Status {
	c := p.last()
	st := engine.Status{Status: device.Status{ListenPort: 51999}, Drops: map[string]uint64{"replay": 3}}
	for i, peer := range c.Device.Peers {
		st.Peers = append(st.Peers, device.PeerStatus{Name: peer.Name, IP: peer.IP, PublicKey: peer.PublicKey,
			Path: "udp 192.0.2.9:1", RxBytes: uint64(100 * (i + 1)), TxBytes: 7, RTT: time.Millisecond,
			Latency: device.PeerLatency{ProbesSent: 5, ProbesAnswered: 4, RTTCounts: [7]uint64{1, 2, 0, 0, 0, 0, 1},
				RTTSum: 1500 * time.Millisecond, P50: 2 * time.Millisecond, P90: 3 * time.Millisecond, P99: 1400 * time.Millisecond,
				RecentSent: 5, Loss: 0.2},
			// 2 packets within 100 µs, 1 within 5 ms, 1 above 250 ms.
			TxQueue: device.QueueStats{Sojourn: [len(device.SojournBuckets) + 1]uint64{0: 2, 5: 1, len(device.SojournBuckets): 1},
				SojournSum: 300 * time.Millisecond, CoDelDrops: 4, TailDrops: 5}})
		st.Filter.FlowRTT = append(st.Filter.FlowRTT, filter.FlowRTT{Peer: peer.IP, Port: 22,
			Counts: [filter.NumFlowRTTCounts]uint64{0, 0, 2}, Sum: 20 * time.Millisecond})
	}
	return st
}

func (p *fakePlane) Ping(ctx context.Context, ip netip.Addr) (time.Duration, string, error) {
	for _, peer := range p.last().Device.Peers {
		if peer.IP == ip {
			return 2 * time.Millisecond, "udp 192.0.2.9:1", nil
		}
	}
	return 0, "", errors.New("no such peer in the data plane")
}

func (p *fakePlane) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}

// waitConfig waits until the plane's last configuration satisfies ok.
func (p *fakePlane) waitConfig(t *testing.T, what string, ok func(engine.Config) bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		p.mu.Lock()
		good := len(p.configs) > 0 && ok(p.configs[len(p.configs)-1])
		p.mu.Unlock()
		if good {
			return
		}
		select {
		case <-p.changed:
		case <-deadline:
			t.Fatalf("data plane never got a config where %s; last: %+v", what, p.last().Device.Peers)
		}
	}
}

func peerNames(c engine.Config) []string {
	var s []string
	for _, p := range c.Device.Peers {
		s = append(s, p.Name)
	}
	return s
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestNodeFollowsNetmap(t *testing.T) {
	baseline := runtime.NumGoroutine()
	fake := registrytest.New(netip.MustParsePrefix("100.64.0.0/24"))
	defer fake.Close()
	bravoKey, _ := nodekey.Generate()
	if _, _, err := fake.AddNode("bravo", bravoKey, netip.MustParseAddrPort("192.0.2.2:51820")); err != nil {
		t.Fatal(err)
	}

	dir := state.Dir(filepath.Join(t.TempDir(), "st"))
	key, keyFile, err := dir.LoadKey("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := Join(ctx, JoinRequest{Coordinator: fake.URL, Token: fake.CreateToken(false), Name: "Alpha", Key: key, KeyFile: keyFile})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	if st.Name != "alpha" || !st.MeshCIDR.Contains(st.IP) || st.Pin != fake.Pin {
		t.Fatalf("Join = %+v, want name alpha in 100.64.0.0/24 pinned to the fake", st)
	}
	if err := dir.SaveNode(st); err != nil {
		t.Fatal(err)
	}

	plane := newFakePlane()
	logs := &lockedBuffer{}
	var ifcClosed, planeStarted bool
	var openedWith tunif.Config
	metricsAddr := freePort(t)
	n, err := New(Config{
		Dir: dir, State: st, Key: key, Interface: "tmtest0", MTU: 1400, MetricsListen: metricsAddr,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		NewEngine: func(dev tun.Device, c engine.Config, _ *slog.Logger) (Engine, error) {
			planeStarted = true
			if dc := c.Device; dc.Self != st.IP || dc.MeshID != st.MeshID || dc.PSK != st.PSKArray() || dc.PrivateKey.Public() != key.Public() {
				return nil, fmt.Errorf("first config %+v does not match the join", c)
			}
			plane.Reconfig(c)
			return plane, nil
		},
		OpenInterface: func(c tunif.Config) (tun.Device, func() error, error) {
			openedWith = c
			return tuntest.NewChannelTUN().TUN(), func() error { ifcClosed = true; return nil }, nil
		},
		HeartbeatInterval: 50 * time.Millisecond,
		EndpointInterval:  50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()

	plane.waitConfig(t, "bravo is a peer", func(c engine.Config) bool { return slices.Equal(peerNames(c), []string{"bravo"}) })
	if !planeStarted || openedWith.Name != "tmtest0" || openedWith.MTU != 1400 || openedWith.Addr != st.IP || openedWith.Prefix != st.MeshCIDR {
		t.Fatalf("interface opened with %+v", openedWith)
	}
	if got := plane.last().Device.Peers[0].Endpoints; !slices.Equal(got, []device.Endpoint{device.UDPEndpoint(netip.MustParseAddrPort("192.0.2.2:51820"))}) {
		t.Errorf("bravo endpoints = %v", got)
	}

	start := time.Now()
	charlieKey, _ := nodekey.Generate()
	if _, _, err := fake.AddNode("charlie", charlieKey); err != nil {
		t.Fatal(err)
	}
	plane.waitConfig(t, "charlie joined", func(c engine.Config) bool { return slices.Contains(peerNames(c), "charlie") })
	t.Logf("new peer configured %v after joining", time.Since(start))

	fake.RemoveNode("bravo")
	plane.waitConfig(t, "bravo removed", func(c engine.Config) bool { return slices.Equal(peerNames(c), []string{"charlie"}) })

	// The local API answers over the socket, which only root may use.
	sock := dir.Path(state.SocketFile)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, mode %v; want 0600", sock, err, fi.Mode().Perm())
	}
	lc := localapi.NewClient(sock)
	status, err := lc.Status(ctx)
	if err == nil && len(status.Peers) == 1 {
		p := status.Peers[0]
		if p.RTTP50 != 2*time.Millisecond || p.RTTP90 != 3*time.Millisecond || p.RTTP99 != 1400*time.Millisecond ||
			p.Loss != 0.2 || p.Probes != 5 || p.ProbesSent != 5 || p.ProbesAnswered != 4 {
			t.Errorf("status peer latency = p50 %v p90 %v p99 %v loss %v probes %d sent %d answered %d, want the plane's",
				p.RTTP50, p.RTTP90, p.RTTP99, p.Loss, p.Probes, p.ProbesSent, p.ProbesAnswered)
		}
	}
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if status.Name != "alpha" || status.IP != st.IP || status.ListenPort != 51999 || len(status.Peers) != 1 || status.Peers[0].Name != "charlie" || status.Peers[0].RxBytes != 100 {
		t.Fatalf("Status = %+v", status)
	}
	if !status.Coordinator.Reachable {
		t.Errorf("coordinator not reachable in status: %+v", status.Coordinator)
	}
	res, err := lc.Ping(ctx, "charlie")
	if err != nil || res.Peer != "charlie" || res.RTT != 2*time.Millisecond || res.Path == "" {
		t.Fatalf("Ping(charlie) = %+v, %v", res, err)
	}
	if res2, err := lc.Ping(ctx, res.IP.String()); err != nil || res2.Peer != "charlie" {
		t.Fatalf("Ping(%s) = %+v, %v", res.IP, res2, err)
	}
	if _, err := lc.Ping(ctx, "bravo"); err == nil || !strings.Contains(err.Error(), "unknown peer") {
		t.Fatalf("Ping(removed bravo) = %v, want unknown peer", err)
	}

	// The listen port the plane chose and the interface are saved for `up`.
	saved, err := dir.LoadNode()
	if err != nil || saved.ListenPort != 51999 || saved.Interface != "tmtest0" || saved.MTU != 1400 {
		t.Fatalf("saved state = %+v, %v", saved, err)
	}

	// Endpoints reach the registry.
	eps := localEndpoints("tmtest0", st.MeshCIDR, 51999)
	deadline := time.Now().Add(time.Minute)
	for {
		var got []netip.AddrPort
		for _, nd := range fake.Nodes() {
			if nd.Name == "alpha" {
				got = nd.Endpoints
			}
		}
		if slices.Equal(got, eps) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry has endpoints %v, want %v", got, eps)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Services set through the local API reach the registry and the status.
	web := api.Service{Name: "web", Protocol: "tcp", Port: 8080}
	if err := lc.SetServices(ctx, "dockerwatch", []api.Service{web}); err != nil {
		t.Fatalf("SetServices: %v", err)
	}
	web.Owner = "dockerwatch" // set by the node
	waitServices(t, fake, "alpha", []api.Service{web})
	if status, err := lc.Status(ctx); err != nil || !slices.Equal(status.Services, []api.Service{web}) {
		t.Errorf("Status.Services = %v, %v; want %v", status.Services, err, web)
	}
	if err := lc.SetServices(ctx, "dockerwatch", nil); err != nil {
		t.Fatalf("SetServices(none): %v", err)
	}
	waitServices(t, fake, "alpha", nil)

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`tunnelmesh_agent_peer_rx_bytes_total{peer="charlie"} 100`,
		`tunnelmesh_agent_drops_total{reason="replay"} 3`,
		`tunnelmesh_agent_peers 1`,
		`tunnelmesh_agent_peer_path_rtt_seconds_bucket{peer="charlie",le="0.004"} 3`,
		`tunnelmesh_agent_peer_path_rtt_seconds_bucket{peer="charlie",le="+Inf"} 4`,
		`tunnelmesh_agent_peer_path_rtt_seconds_sum{peer="charlie"} 1.5`,
		`tunnelmesh_agent_peer_path_rtt_seconds_count{peer="charlie"} 4`,
		`tunnelmesh_agent_peer_probes_sent_total{peer="charlie"} 5`,
		`tunnelmesh_agent_peer_tcp_handshake_seconds_bucket{peer="charlie",port="22",le="0.016"} 2`,
		`tunnelmesh_agent_peer_tcp_handshake_seconds_count{peer="charlie",port="22"} 2`,
		`tunnelmesh_agent_peer_path{path="udp 192.0.2.9:1",peer="charlie",transport="udp"} 1`,
		`tunnelmesh_agent_reconfigs_total`,
		`tunnelmesh_agent_queue_sojourn_seconds_bucket{direction="tx",le="0.0001"} 2`,
		`tunnelmesh_agent_queue_sojourn_seconds_bucket{direction="tx",le="0.005"} 3`,
		`tunnelmesh_agent_queue_sojourn_seconds_bucket{direction="tx",le="0.25"} 3`,
		`tunnelmesh_agent_queue_sojourn_seconds_bucket{direction="tx",le="+Inf"} 4`,
		`tunnelmesh_agent_queue_sojourn_seconds_sum{direction="tx"} 0.3`,
		`tunnelmesh_agent_queue_sojourn_seconds_count{direction="rx"} 0`,
		`tunnelmesh_agent_queue_drops_total{direction="tx",discipline="codel"} 4`,
		`tunnelmesh_agent_queue_drops_total{direction="tx",discipline="limit"} 5`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The registry rotates the mesh PSK: the plane gets the new one and,
	// for the overlap, the old one; the state file keeps the new one.
	oldPSK := fake.PSK()
	fake.RotatePSK(time.Minute)
	newPSK := fake.PSK()
	plane.waitConfig(t, "the rotated psk", func(c engine.Config) bool {
		return bytes.Equal(c.Device.PSK[:], newPSK) && bytes.Equal(c.Device.PrevPSK[:], oldPSK) &&
			c.Device.PrevPSKUntil.After(time.Now()) && slices.Equal(peerNames(c), []string{"charlie"})
	})
	if saved, err := dir.LoadNode(); err != nil || !bytes.Equal(saved.PSK, newPSK) {
		t.Fatalf("saved psk after rotation = %x, %v; want the new one", saved.PSK, err)
	}

	// The netmap lists the registry replicas: the node saves them (with
	// the rotated PSK kept) for the next start, and its client turns to
	// them when the one in use fails.
	replicas := []string{fake.URL, "https://192.0.2.7:8443"}
	fake.SetRegistries(append(slices.Clone(replicas), "http://plain.example:80"))
	deadline = time.Now().Add(30 * time.Second)
	for {
		saved, err := dir.LoadNode()
		if err == nil && slices.Equal(saved.Registries, replicas) {
			if !bytes.Equal(saved.PSK, newPSK) {
				t.Fatalf("saving the registries lost the rotated psk")
			}
			creds, err := regclient.LoadCredentials(dir.Path(state.CredentialsFile))
			if err != nil || !slices.Equal(creds.Registries, replicas) {
				t.Fatalf("credentials registries = %v, %v; want %v", creds.Registries, err, replicas)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("saved registries = %v, %v; want %v", saved.Registries, err, replicas)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Removed by the admin: the node drops every peer.
	fake.RemoveNode("alpha")
	plane.waitConfig(t, "all peers dropped", func(c engine.Config) bool { return len(c.Device.Peers) == 0 })
	if st, err := lc.Status(ctx); err != nil || !st.Removed {
		t.Errorf("status after removal: removed = %v, %v; want true", st.Removed, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after cancel")
	}
	if !plane.closed || !ifcClosed {
		t.Fatalf("plane closed %v, interface closed %v; want both", plane.closed, ifcClosed)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("socket left behind")
	}
	// No PSK, old or new, in any form, in the logs.
	out := logs.String()
	if !strings.Contains(out, "mesh psk rotated") {
		t.Errorf("rotation not logged:\n%s", out)
	}
	for _, k := range [][]byte{oldPSK, newPSK} {
		for _, form := range []string{hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k), string(k), fmt.Sprint(k)} {
			if strings.Contains(out, form) {
				t.Fatalf("a psk appears in the logs")
			}
		}
	}
	fake.Close()
	http.DefaultClient.CloseIdleConnections()
	for i := 0; ; i++ {
		g := runtime.NumGoroutine()
		if g <= baseline+2 {
			break
		}
		if i == 100 {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after\n%s", baseline, g, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockedBuffer is an io.Writer for a logger used by several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNormalizeCoordinator(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"https://reg.example:8443", "https://reg.example:8443", ""},
		{"reg.example", "https://reg.example:8443", ""},
		{"https://[::1]", "https://[::1]:8443", ""},
		{"http://reg.example", "", "must be https"},
		{"https://reg.example/x", "", "only https://HOST:PORT"},
		{"https://", "", "no host"},
	}
	for _, tt := range tests {
		got, err := NormalizeCoordinator(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NormalizeCoordinator(%q) = %q, %v, want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeCoordinator(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestJoinBadToken(t *testing.T) {
	fake := registrytest.New(netip.Prefix{})
	defer fake.Close()
	key, _ := nodekey.Generate()
	tests := []struct{ name, token, nodeName, want string }{
		{"malformed", "garbage", "a", "malformed join token"},
		{"bad name", fake.CreateToken(false), "Not_A_Name", "only lowercase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Join(context.Background(), JoinRequest{Coordinator: fake.URL, Token: tt.token, Name: tt.nodeName, Key: key, KeyFile: "/k"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Join = %v, want error containing %q", err, tt.want)
			}
		})
	}
	// A well-formed token the registry never issued is refused.
	tok, _ := jointoken.New(fake.Pin)
	if _, err := Join(context.Background(), JoinRequest{Coordinator: fake.URL, Token: tok.String(), Name: "a", Key: key, KeyFile: "/k"}); !regclient.IsCode(err, api.CodeTokenInvalid) {
		t.Fatalf("Join(unissued token) = %v, want token_invalid", err)
	}
}

func TestIsL3Tunnel(t *testing.T) {
	root := t.TempDir()
	for name, typ := range map[string]string{"eth0": "1\n", "wg0": "65534\n", "tunnelmesh1": "65534\n", "ppp0": "512\n"} {
		if err := os.MkdirAll(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name, "type"), []byte(typ), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]bool{"eth0": false, "wg0": true, "tunnelmesh1": true, "ppp0": false, "missing": false} {
		if got := isL3Tunnel(root, name); got != want {
			t.Errorf("isL3Tunnel(%s) = %v, want %v", name, got, want)
		}
	}
}

// endpointPlane is a fakePlane that is also an EndpointSource.
type endpointPlane struct {
	*fakePlane
	sshListen netip.AddrPort
}

func (endpointPlane) PublicAddr(context.Context, netip.AddrPort) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("no stun")
}
func (p endpointPlane) SSHListenAddr() netip.AddrPort { return p.sshListen }
func (endpointPlane) NetworkChanged()                 {}

func TestSSHEndpointNotReportedWhenUnreachable(t *testing.T) {
	mesh := netip.MustParsePrefix("100.64.0.0/10")
	for _, tc := range []struct {
		name      string
		advertise string
		listen    string
		want      netip.AddrPort
	}{
		{name: "loopback listener", listen: "127.0.0.1:2222"},
		{name: "loopback advertised", advertise: "127.0.0.1:2222"},
		{name: "link-local advertised", advertise: "169.254.169.254:22"},
		{name: "routable advertised", advertise: "192.0.2.7:2222", want: netip.MustParseAddrPort("192.0.2.7:2222")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg Config
			cfg.STUN = "off"
			cfg.State.MeshCIDR = mesh
			if tc.advertise != "" {
				cfg.SSHAdvertise = netip.MustParseAddrPort(tc.advertise)
			}
			p := endpointPlane{fakePlane: newFakePlane()}
			if tc.listen != "" {
				p.sshListen = netip.MustParseAddrPort(tc.listen)
			}
			n := &Node{cfg: cfg, eng: p, log: slog.New(slog.NewTextHandler(io.Discard, nil)), ifname: "tmnone0"}
			req := n.discoverEndpoints(context.Background())
			if req.SSHEndpoint != tc.want {
				t.Errorf("discoverEndpoints().SSHEndpoint = %v, want %v", req.SSHEndpoint, tc.want)
			}
		})
	}
}

// waitServices waits until the fake registry holds want as name's services.
func waitServices(t *testing.T, fake *registrytest.Fake, name string, want []api.Service) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var got []api.Service
		for _, nd := range fake.Nodes() {
			if nd.Name == name {
				got = nd.Services
			}
		}
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry has services %v for %s, want %v", got, name, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
