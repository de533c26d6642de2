package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
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
