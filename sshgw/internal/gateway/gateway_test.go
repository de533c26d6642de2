package gateway

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/config"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/sshtest"
	"go.uber.org/goleak"
)

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Run with a key file accepts SSH connections while it runs and returns
// nil once its context ends, with the listener closed.
func TestRunStopsOnCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pem, _ := sshtest.Key(t).MarshalOpenSSH("gw")
	cfg := config.Default()
	cfg.KeyFile = filepath.Join(t.TempDir(), "node_key")
	os.WriteFile(cfg.KeyFile, pem, 0o600)
	cfg.Listen, cfg.ForwardTo = freeAddr(t), "127.0.0.1:7600"
	cfg.AllowKeys = []string{sshtest.Key(t).Public().String()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, sshtest.Quiet) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", cfg.Listen)
		if err == nil {
			banner := make([]byte, 4)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = c.Read(banner)
			c.Close()
			if string(banner) != "SSH-" {
				t.Errorf("gateway greets with %q (%v), want SSH-", banner, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway never listened: %v", err)
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
	if c, err := net.Dial("tcp", cfg.Listen); err == nil {
		c.Close()
		t.Error("listener still accepts after Run returned")
	}
}

// An unreadable key file fails Run before it listens, naming the key.
func TestRunBadKeyFile(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := config.Default()
	cfg.KeyFile = filepath.Join(t.TempDir(), "missing")
	cfg.Listen, cfg.ForwardTo = freeAddr(t), "127.0.0.1:7600"
	err := Run(context.Background(), cfg, sshtest.Quiet)
	if err == nil || !strings.HasPrefix(err.Error(), "key_file: load node key") {
		t.Errorf("Run(missing key file) = %v, want a key_file error", err)
	}
}
