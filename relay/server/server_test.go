package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tunnelmesh/tunnelmesh/relay/internal/relaytest"
	"github.com/tunnelmesh/tunnelmesh/relay/server"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/relaywire"
	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
	"github.com/tunnelmesh/tunnelmesh/testkit/daemontest"
)

func newKey(t *testing.T) nodekey.PrivateKey {
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rawDial opens a WebSocket to the relay and reads its challenge.
func rawDial(t *testing.T, r *relaytest.Relay) (*websocket.Conn, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlspin.ClientConfig(r.Pin)}}
	ws, _, err := websocket.Dial(ctx, r.URL, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	_, chal, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relaywire.ParseChallenge(chal); err != nil {
		t.Fatalf("first message is not a challenge: %v", err)
	}
	return ws, chal
}

// answer sends auth and returns the relay's reply: nil error and the ready
// message, or the close error.
func answer(t *testing.T, ws *websocket.Conn, auth []byte) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageBinary, auth); err != nil {
		return nil, err
	}
	_, msg, err := ws.Read(ctx)
	return msg, err
}

func TestHandshake(t *testing.T) {
	daemontest.CheckGoroutines(t)
	r := relaytest.Start(t, server.Config{ID: "relay-x"}, 0)
	k := newKey(t)

	// A good answer.
	ws, chal := rawDial(t, r)
	ch, _ := relaywire.ParseChallenge(chal)
	if ch.RelayID != "relay-x" {
		t.Errorf("challenge relay id = %q, want relay-x", ch.RelayID)
	}
	if d := time.Since(ch.Time); d < -time.Second || d > 5*time.Second {
		t.Errorf("challenge time %v is not now", ch.Time)
	}
	good := relaywire.SignAuth(k, chal).Append(nil)
	msg, err := answer(t, ws, good)
	if err != nil || relaywire.ParseReady(msg) != nil {
		t.Fatalf("good auth: reply %x, %v; want ready", msg, err)
	}
	daemontest.Eventually(t, 5*time.Second, "registration", func() bool { return r.Server.Connected(k.Public()) })

	tests := []struct {
		name string
		auth func(chal []byte) []byte
	}{
		{"replayed answer to an earlier challenge", func([]byte) []byte { return good }},
		{"wrong signature", func(chal []byte) []byte {
			a := relaywire.SignAuth(k, chal)
			a.Sig[5] ^= 0x40
			return a.Append(nil)
		}},
		{"signature by another key", func(chal []byte) []byte {
			a := relaywire.SignAuth(newKey(t), chal)
			a.Key = k.Public()
			return a.Append(nil)
		}},
		{"signed for another relay", func(chal []byte) []byte {
			c, _ := relaywire.ParseChallenge(chal)
			c.RelayID = "relay-y"
			other, _ := c.Append(nil)
			return relaywire.SignAuth(k, other).Append(nil)
		}},
		{"not an auth message", func([]byte) []byte { return []byte{relaywire.TypeReady} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, chal := rawDial(t, r)
			msg, err := answer(t, ws, tt.auth(chal))
			if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation {
				t.Errorf("reply = %x, %v; want close with status 1008", msg, err)
			}
		})
	}
	if got := r.Metric("handshakes_total", "result=bad_auth"); got != float64(len(tests)) {
		t.Errorf("handshakes_total{bad_auth} = %v, want %d", got, len(tests))
	}
	if got := r.Metric("handshakes_total", "result=ok"); got != 1 {
		t.Errorf("handshakes_total{ok} = %v, want 1", got)
	}
	// The refused attempts did not disturb the authenticated connection.
	if !r.Server.Connected(k.Public()) {
		t.Error("good connection dropped")
	}
}

func TestHandshakeTimeout(t *testing.T) {
	daemontest.CheckGoroutines(t)
	r := relaytest.Start(t, server.Config{HandshakeTimeout: 200 * time.Millisecond}, 0)
	ws, _ := rawDial(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := ws.Read(ctx); err == nil {
		t.Fatal("relay kept a silent connection open")
	}
	daemontest.Eventually(t, 5*time.Second, "handshakes_total{io_error} = 1", func() bool {
		return r.Metric("handshakes_total", "result=io_error") == 1
	})
}

func TestNewConnReplacesOld(t *testing.T) {
	daemontest.CheckGoroutines(t)
	r := relaytest.Start(t, server.Config{}, 0)
	k := newKey(t)
	ws1, chal1 := rawDial(t, r)
	if _, err := answer(t, ws1, relaywire.SignAuth(k, chal1).Append(nil)); err != nil {
		t.Fatal(err)
	}
	ws2, chal2 := rawDial(t, r)
	if _, err := answer(t, ws2, relaywire.SignAuth(k, chal2).Append(nil)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := ws1.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Errorf("old connection read = %v, want close 1008 (replaced)", err)
	}
	daemontest.Eventually(t, 5*time.Second, "one connection", func() bool { return r.Metric("connections") == 1 })
	// The newer connection works: it can send to itself through the relay.
	if err := ws2.Write(ctx, websocket.MessageBinary, relaywire.AppendPacket(nil, k.Public(), []byte("me"))); err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws2.Read(ctx)
	src, p, perr := relaywire.ParsePacket(msg)
	if err != nil || perr != nil || src != k.Public() || string(p) != "me" {
		t.Errorf("self packet = %x (%v, %v), want packet from self", msg, err, perr)
	}
	// A malformed frame is dropped and counted, and the connection survives.
	ws2.Write(ctx, websocket.MessageBinary, []byte{relaywire.TypePacket, 1, 2})
	daemontest.Eventually(t, 5*time.Second, "malformed drop", func() bool { return r.Metric("drops_total", "reason=malformed") == 1 })
	if !r.Server.Connected(k.Public()) {
		t.Error("connection dropped after a malformed frame")
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  server.Config
	}{
		{"relay id too long", server.Config{ID: string(make([]byte, 256))}},
		{"negative queue", server.Config{ID: "r", QueueLen: -1}},
		{"negative timeout", server.Config{ID: "r", HandshakeTimeout: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := server.New(tt.cfg); err == nil {
				t.Errorf("New(%+v) = nil error", tt.cfg)
			}
		})
	}
	reg := prometheus.NewRegistry()
	if _, err := server.New(server.Config{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := server.New(server.Config{Registerer: reg}); err == nil {
		t.Error("second New on the same registry = nil error, want duplicate registration error")
	}
}

func TestAllowList(t *testing.T) {
	a, b := newKey(t).Public(), newKey(t).Public()
	allow := server.AllowList([]nodekey.PublicKey{a})
	if !allow(a) || allow(b) {
		t.Errorf("AllowList([a]): a=%v b=%v, want true false", allow(a), allow(b))
	}
}

// rawNode authenticates a raw WebSocket as k.
func rawNode(t *testing.T, r *relaytest.Relay, k nodekey.PrivateKey) *websocket.Conn {
	t.Helper()
	ws, chal := rawDial(t, r)
	msg, err := answer(t, ws, relaywire.SignAuth(k, chal).Append(nil))
	if err != nil || relaywire.ParseReady(msg) != nil {
		t.Fatalf("auth: %x, %v", msg, err)
	}
	return ws
}

// readDatagrams reads messages from ws until it has n datagrams.
func readDatagrams(t *testing.T, ws *websocket.Conn, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []string
	for len(out) < n {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d datagrams: %v", len(out), err)
		}
		switch msg[0] {
		case relaywire.TypePacket:
			k, p, err := relaywire.ParsePacket(msg)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, k.ShortID()+":"+string(p))
		case relaywire.TypeBatch:
			br, err := relaywire.ParseBatch(msg)
			if err != nil {
				t.Fatal(err)
			}
			for {
				k, p, ok, err := br.Next()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				out = append(out, k.ShortID()+":"+string(p))
			}
		default:
			t.Fatalf("unexpected message %x", msg)
		}
	}
	return out
}

func TestBatchFromNode(t *testing.T) {
	daemontest.CheckGoroutines(t)
	r := relaytest.Start(t, server.Config{}, 0)
	a, b := newKey(t), newKey(t)
	wa, wb := rawNode(t, r, a), rawNode(t, r, b)
	batch := []byte{relaywire.TypeBatch}
	batch = relaywire.AppendBatchRecord(batch, b.Public(), []byte("one"))
	batch = relaywire.AppendBatchRecord(batch, newKey(t).Public(), []byte("lost"))
	batch = relaywire.AppendBatchRecord(batch, b.Public(), []byte("two"))
	batch = append(batch, 1, 2, 3) // a truncated record ends the batch
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wa.Write(ctx, websocket.MessageBinary, batch); err != nil {
		t.Fatal(err)
	}
	got := readDatagrams(t, wb, 2)
	src := a.Public().ShortID()
	if got[0] != src+":one" || got[1] != src+":two" {
		t.Errorf("b received %q, want [%s:one %s:two]", got, src, src)
	}
	daemontest.Eventually(t, 5*time.Second, "drops counted", func() bool {
		return r.Metric("drops_total", "reason=no_peer") == 1 && r.Metric("drops_total", "reason=malformed") == 1
	})
}

// Connections outlive the embedding http.Server's read and write timeouts
// (net/http clears them when coder/websocket hijacks the connection; this
// guards that for the coordinator, which mounts the relay in its server).
func TestOutlivesHTTPServerTimeouts(t *testing.T) {
	daemontest.CheckGoroutines(t)
	r := relaytest.Start(t, server.Config{}, 0)
	a, b := newKey(t), newKey(t)
	wa, wb := rawNode(t, r, a), rawNode(t, r, b)
	time.Sleep(relaytest.ServerTimeout + 500*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wa.Write(ctx, websocket.MessageBinary, relaywire.AppendPacket(nil, b.Public(), []byte("late"))); err != nil {
		t.Fatal(err)
	}
	if got := readDatagrams(t, wb, 1); got[0] != a.Public().ShortID()+":late" {
		t.Errorf("b received %q", got)
	}
}
