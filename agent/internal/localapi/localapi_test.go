package localapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fakeBackend struct{}

func (fakeBackend) Status() Status {
	return Status{Name: "alpha", IP: netip.MustParseAddr("100.64.0.1"), Peers: []Peer{{Name: "bravo"}}}
}

func (fakeBackend) Ping(ctx context.Context, peer string) (PingResult, error) {
	switch peer {
	case "bravo":
		return PingResult{Peer: "bravo", Path: "udp 192.0.2.1:1", RTT: time.Millisecond}, nil
	case "slow":
		return PingResult{}, errors.New("ping slow: context deadline exceeded")
	}
	return PingResult{}, fmt.Errorf("ping %s: %w", peer, ErrUnknownPeer)
}

func TestServeAndClient(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if _, err := Listen(sock); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen = %v, want ErrInUse", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, fakeBackend{}, nil) }()

	c := NewClient(sock)
	s, err := c.Status(ctx)
	if err != nil || s.Name != "alpha" || len(s.Peers) != 1 {
		t.Fatalf("Status = %+v, %v", s, err)
	}
	tests := []struct {
		peer, wantErr string
	}{
		{"bravo", ""},
		{"nobody", "unknown peer"},
		{"slow", "deadline exceeded"},
		{"", "peer (a name or mesh IP) is required"},
	}
	for _, tt := range tests {
		r, err := c.Ping(ctx, tt.peer)
		if tt.wantErr == "" {
			if err != nil || r.Peer != tt.peer || r.RTT != time.Millisecond {
				t.Errorf("Ping(%q) = %+v, %v", tt.peer, r, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Ping(%q) = %v, want error containing %q", tt.peer, err, tt.wantErr)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v, want nil after cancel", err)
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Status after stop = %v, want ErrNotRunning", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	// A socket file nobody serves, as a crashed node leaves behind.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket missing: %v", err)
	}
	ln2, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln2.Close()
}
