package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/config"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
)

func TestListenWaitsForTheAddress(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tries := 0
	listen = func(network, addr string) (net.Listener, error) {
		tries++
		if tries < 3 {
			return nil, &net.OpError{Op: "listen", Net: network, Err: os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)}
		}
		return net.Listen(network, "127.0.0.1:0")
	}
	defer func() { listen = net.Listen }()
	l, err := listenWhenUp(context.Background(), netip.MustParseAddrPort("100.64.0.1:2049"), log)
	if err != nil || l == nil {
		t.Fatalf("listenWhenUp = %v, %v", l, err)
	}
	l.Close()
	if tries != 3 {
		t.Fatalf("listened %d times, want 3", tries)
	}

	// Other errors are not waited out.
	listen = func(string, string) (net.Listener, error) { return nil, syscall.EADDRINUSE }
	if _, err := listenWhenUp(context.Background(), netip.MustParseAddrPort("100.64.0.1:2049"), log); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("listenWhenUp with the port taken = %v", err)
	}
	// The context ends the wait.
	listen = func(string, string) (net.Listener, error) { return nil, syscall.EADDRNOTAVAIL }
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if l, err := listenWhenUp(ctx, netip.MustParseAddrPort("100.64.0.1:2049"), log); l != nil || err != nil {
		t.Fatalf("listenWhenUp after ctx ended = %v, %v", l, err)
	}
}

// TestRunReturnsOnError: a failure after the netmap watch started (an
// export directory that does not exist) ends Run with the error; the watch
// is stopped, not waited for forever.
func TestRunReturnsOnError(t *testing.T) {
	fake := registrytest.New(netip.Prefix{})
	defer fake.Close()
	dir := t.TempDir()
	key, _ := nodekey.Generate()
	creds, _, err := fake.AddNode("files", key)
	if err != nil {
		t.Fatal(err)
	}
	creds.KeyFile = filepath.Join(dir, "node.key")
	if err := key.Save(creds.KeyFile); err != nil {
		t.Fatal(err)
	}
	credPath := filepath.Join(dir, "node.credentials")
	if err := creds.Save(credPath); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte("credentials: " + credPath + "\nportmap: false\nexports:\n- {name: a, dir: " + dir + "/missing, allow: {read_only: ['*']}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("Run = %v, want the missing export's error", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after failing")
	}
}
