package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/relay/internal/relaytest"
	"github.com/tunnelmesh/tunnelmesh/relay/server"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/testkit/daemontest"
)

var quietLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

type packet struct {
	src nodekey.PublicKey
	pkt []byte
}

type node struct {
	key  nodekey.PrivateKey
	c    *Client
	recv chan packet
}

func newKey(t testing.TB) nodekey.PrivateKey {
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startNode runs a client against r until the test ends. edit may change the
// config before New.
func startNode(t testing.TB, r *relaytest.Relay, edit func(*Config)) *node {
	t.Helper()
	n := &node{key: newKey(t), recv: make(chan packet, 1024)}
	cfg := Config{
		URL: r.URL, Key: n.key, TLSPin: r.Pin, Proxy: ProxyDirect,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger: quietLogger,
		OnPacket: func(src nodekey.PublicKey, pkt []byte) {
			n.recv <- packet{src, bytes.Clone(pkt)}
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

func (n *node) wait(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.c.WaitConnected(ctx); err != nil {
		t.Fatalf("node %s never connected: %v (stats %+v)", n.key.Public().ShortID(), err, n.c.Stats())
	}
}

func (n *node) expect(t testing.TB, src nodekey.PublicKey, want []byte) {
	t.Helper()
	select {
	case p := <-n.recv:
		if p.src != src || !bytes.Equal(p.pkt, want) {
			t.Fatalf("received (%s, %q), want (%s, %q)", p.src.ShortID(), p.pkt, src.ShortID(), want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no packet %q from %s", want, src.ShortID())
	}
}

func TestExchangeOverTLS(t *testing.T) {
	daemontest.CheckGoroutines(t)
	r := relaytest.Start(t, server.Config{ID: "relay-test"}, 0)
	a := startNode(t, r, func(c *Config) { c.RelayID = "relay-test" })
	b := startNode(t, r, nil)
	a.wait(t)
	b.wait(t)
	daemontest.Eventually(t, 5*time.Second, "both nodes registered", func() bool { return r.Server.NumConns() == 2 })

	if err := a.c.Send(b.key.Public(), []byte("hello b")); err != nil {
		t.Fatal(err)
	}
	b.expect(t, a.key.Public(), []byte("hello b"))
	big := bytes.Repeat([]byte{0xab}, 60000)
	if err := b.c.Send(a.key.Public(), big); err != nil {
		t.Fatal(err)
	}
	a.expect(t, b.key.Public(), big)

	// A frame for a node that is not connected is dropped and counted.
	if err := a.c.Send(newKey(t).Public(), []byte("nobody")); err != nil {
		t.Fatal(err)
	}
	daemontest.Eventually(t, 5*time.Second, "no_peer drop", func() bool { return r.Metric("drops_total", "reason=no_peer") == 1 })
	if got := r.Metric("frames_forwarded_total"); got != 2 {
		t.Errorf("frames_forwarded_total = %v, want 2", got)
	}
	if got := r.Metric("bytes_forwarded_total"); got != float64(len("hello b")+len(big)) {
		t.Errorf("bytes_forwarded_total = %v, want %d", got, len("hello b")+len(big))
	}
	if got := r.Metric("connections"); got != 2 {
		t.Errorf("connections = %v, want 2", got)
	}
}

func TestSendErrors(t *testing.T) {
	r := relaytest.Start(t, server.Config{}, 0)
	c, err := New(Config{URL: r.URL, Key: newKey(t), OnPacket: func(nodekey.PublicKey, []byte) {}})
	if err != nil {
		t.Fatal(err)
	}
	dst := newKey(t).Public()
	if err := c.Send(dst, []byte("x")); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Send before Run = %v, want ErrNotConnected", err)
	}
	if err := c.Send(dst, nil); err == nil {
		t.Error("Send(empty) = nil, want error")
	}
	if err := c.Send(dst, make([]byte, 70000)); err == nil {
		t.Error("Send(70000 bytes) = nil, want error")
	}
}

func TestConfigErrors(t *testing.T) {
	k := newKey(t)
	on := func(nodekey.PublicKey, []byte) {}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"http scheme", Config{URL: "https://r/relay", Key: k, OnPacket: on}},
		{"no host", Config{URL: "wss:///relay", Key: k, OnPacket: on}},
		{"no key", Config{URL: "wss://r/relay", OnPacket: on}},
		{"no callback", Config{URL: "wss://r/relay", Key: k}},
		{"bad proxy", Config{URL: "wss://r/relay", Key: k, OnPacket: on, Proxy: "socks5://p:1"}},
		{"bad relay id", Config{URL: "wss://r/relay", Key: k, OnPacket: on, RelayID: "\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Errorf("New(%+v) = nil error, want error", tt.cfg)
			}
		})
	}
}

func TestWrongPinAndRelayIDRefused(t *testing.T) {
	daemontest.CheckGoroutines(t)
	r := relaytest.Start(t, server.Config{ID: "relay-a"}, 0)
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"wrong pin", func(c *Config) { c.TLSPin = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }},
		{"other relay id", func(c *Config) { c.RelayID = "relay-b" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, r, tt.edit)
			daemontest.Eventually(t, 5*time.Second, "failed attempts", func() bool { return n.c.Stats().Failures >= 2 })
			if n.c.Connected() || n.c.Stats().Connects != 0 {
				t.Errorf("client connected despite %s: %+v", tt.name, n.c.Stats())
			}
		})
	}
	if got := r.Metric("handshakes_total", "result=ok"); got != 0 {
		t.Errorf("handshakes ok = %v, want 0 (no node may sign for another relay)", got)
	}
}

func TestUnauthorizedAndRecheck(t *testing.T) {
	daemontest.CheckGoroutines(t)
	allowed := newKey(t)
	var mu sync.Mutex
	allow := map[nodekey.PublicKey]bool{allowed.Public(): true}
	r := relaytest.Start(t, server.Config{Authorize: func(k nodekey.PublicKey) bool {
		mu.Lock()
		defer mu.Unlock()
		return allow[k]
	}}, 0)
	a := startNode(t, r, func(c *Config) { c.Key = allowed })
	a.wait(t)
	stranger := startNode(t, r, nil)
	daemontest.Eventually(t, 5*time.Second, "refusal", func() bool {
		return r.Metric("handshakes_total", "result=unauthorized") >= 1
	})
	if stranger.c.Connected() {
		t.Error("unauthorized node connected")
	}
	// The node is removed from the mesh: Recheck cuts it off.
	mu.Lock()
	delete(allow, allowed.Public())
	mu.Unlock()
	if n := r.Server.Recheck(); n != 1 {
		t.Errorf("Recheck() = %d, want 1", n)
	}
	daemontest.Eventually(t, 5*time.Second, "removed node disconnected", func() bool {
		return !r.Server.Connected(allowed.Public()) && !a.c.Connected()
	})
}

// A node that stops reading fills its own queue; frames for it are dropped
// and counted, and other nodes' traffic through the same relay (even from the
// same sender) keeps flowing.
func TestSlowConsumerDoesNotBlockOthers(t *testing.T) {
	daemontest.CheckGoroutines(t)
	r := relaytest.Start(t, server.Config{QueueLen: 16}, 64<<10)
	release := make(chan struct{})
	slow := startNode(t, r, func(c *Config) {
		c.SocketBuffer = 32 << 10
		c.OnPacket = func(nodekey.PublicKey, []byte) { <-release }
	})
	fast := startNode(t, r, nil)
	sender := startNode(t, r, func(c *Config) { c.QueueLen = 4096 })
	for _, n := range []*node{slow, fast, sender} {
		n.wait(t)
	}
	daemontest.Eventually(t, 5*time.Second, "nodes registered", func() bool { return r.Server.NumConns() == 3 })
	defer close(release)

	pad := bytes.Repeat([]byte{1}, 1400)
	send := func(dst nodekey.PublicKey, p []byte) {
		for {
			err := sender.c.Send(dst, p)
			if err == nil {
				return
			}
			if !errors.Is(err, ErrQueueFull) {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// Each round floods the stalled node, then sends one frame to the fast
	// node and waits for it: behind a head-of-line stall it would never come.
	const rounds = 1000
	for i := range rounds {
		for range 10 {
			send(slow.key.Public(), pad)
		}
		send(fast.key.Public(), fmt.Appendf(nil, "fast %d", i))
		fast.expect(t, sender.key.Public(), fmt.Appendf(nil, "fast %d", i))
	}
	if got := r.Metric("drops_total", "reason=queue_full"); got == 0 {
		t.Error("drops_total{reason=queue_full} = 0, want > 0 for the stalled node")
	} else {
		t.Logf("dropped %v frames for the stalled node", got)
	}
}

func TestReconnectAfterRelayRestart(t *testing.T) {
	daemontest.CheckGoroutines(t)
	r := relaytest.Start(t, server.Config{}, 0)
	var ups atomic.Int32
	a := startNode(t, r, func(c *Config) { c.OnState = func(up bool) { ups.Add(1) } })
	b := startNode(t, r, nil)
	a.wait(t)
	b.wait(t)

	r.Restart()
	daemontest.Eventually(t, 10*time.Second, "both nodes back", func() bool {
		return r.Server.NumConns() == 2 && a.c.Connected() && b.c.Connected()
	})
	if err := a.c.Send(b.key.Public(), []byte("after restart")); err != nil {
		t.Fatal(err)
	}
	b.expect(t, a.key.Public(), []byte("after restart"))
	if st := a.c.Stats(); st.Connects < 2 || st.Failures < 1 {
		t.Errorf("stats after restart = %+v, want >= 2 connects and >= 1 failure", st)
	}
	if ups.Load() < 3 { // up, down, up
		t.Errorf("OnState called %d times, want >= 3", ups.Load())
	}
}

// connectProxy is a minimal HTTP CONNECT proxy that records its targets.
type connectProxy struct {
	mu      sync.Mutex
	targets []string
	wg      sync.WaitGroup
}

func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, r.Host)
	p.mu.Unlock()
	up, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "no hijack", http.StatusInternalServerError)
		return
	}
	down, brw, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	io.WriteString(down, "HTTP/1.1 200 Connection established\r\n\r\n")
	p.wg.Add(2)
	go func() { defer p.wg.Done(); pipe(up, brw.Reader); up.(*net.TCPConn).CloseWrite() }()
	go func() { defer p.wg.Done(); io.Copy(down, up); down.Close() }()
}

func pipe(dst io.Writer, src *bufio.Reader) { io.Copy(dst, src) }

func TestThroughHTTPProxy(t *testing.T) {
	daemontest.CheckGoroutines(t)
	r := relaytest.Start(t, server.Config{}, 0)
	p := &connectProxy{}
	ps := httptest.NewServer(p)
	t.Cleanup(func() { ps.Close(); p.wg.Wait() })

	a := startNode(t, r, func(c *Config) { c.Proxy = ps.URL })
	b := startNode(t, r, nil)
	a.wait(t)
	b.wait(t)
	if err := a.c.Send(b.key.Public(), []byte("via proxy")); err != nil {
		t.Fatal(err)
	}
	b.expect(t, a.key.Public(), []byte("via proxy"))
	if err := b.c.Send(a.key.Public(), []byte("back")); err != nil {
		t.Fatal(err)
	}
	a.expect(t, b.key.Public(), []byte("back"))
	p.mu.Lock()
	defer p.mu.Unlock()
	want := r.URL[len("wss://") : len(r.URL)-len("/relay")]
	if len(p.targets) == 0 || p.targets[0] != want {
		t.Errorf("proxy CONNECT targets = %v, want [%s]", p.targets, want)
	}
}
