package relayd

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/relay/internal/config"
	"go.uber.org/goleak"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Run serves /metrics while it runs and returns nil once its context ends,
// with both listeners closed.
func TestRunStopsOnCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := config.Default()
	cfg.Listen, cfg.Metrics = freeAddr(t), freeAddr(t)
	cfg.TLS.StateDir = filepath.Join(t.TempDir(), "state")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, quiet) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + cfg.Metrics + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), "tunnelmesh_relay_connections 0") {
				t.Errorf("/metrics lacks tunnelmesh_relay_connections:\n%s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics endpoint never came up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, addr := range []string{cfg.Listen, cfg.Metrics} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s still accepts after Run returned", addr)
		}
	}
}

// A metrics address in use fails Run at once, naming the listener.
func TestRunMetricsInUse(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := config.Default()
	cfg.Listen, cfg.Metrics = freeAddr(t), busy.Addr().String()
	cfg.TLS.StateDir = filepath.Join(t.TempDir(), "state")
	err = Run(context.Background(), cfg, quiet)
	if err == nil || !strings.HasPrefix(err.Error(), "listen metrics:") {
		t.Errorf("Run with a busy metrics address = %v, want a listen metrics error", err)
	}
}
