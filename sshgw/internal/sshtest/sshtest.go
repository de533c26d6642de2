// Package sshtest holds helpers for the sshgw tests: keys, a running sshgw
// server, polling and a goroutine leak check.
package sshtest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/sshgw/server"
)

// Quiet is a logger for tests: errors only.
var Quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// Key returns a new node key.
func Key(t testing.TB) nodekey.PrivateKey {
	t.Helper()
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Server is a running sshgw server on a loopback port.
type Server struct {
	*server.Server
	Key  nodekey.PrivateKey
	Addr string
	done chan error
}

// StartServer runs an sshgw server with cfg (HostKey generated when zero,
// Logger quiet when nil) on addr ("127.0.0.1:0" when empty) until the test
// ends.
func StartServer(t testing.TB, cfg server.Config, addr string) *Server {
	t.Helper()
	if cfg.HostKey.IsZero() {
		cfg.HostKey = Key(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = Quiet
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	for i := 0; ; i++ {
		l, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ts := &Server{Server: s, Key: cfg.HostKey, Addr: l.Addr().String(), done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(l) }()
	t.Cleanup(ts.Stop)
	return ts
}

// Stop closes the server and waits for Serve to return (idempotent).
func (s *Server) Stop() {
	if s.done == nil {
		return
	}
	s.Close()
	<-s.done
	s.done = nil
}

// Eventually polls cond every 10 ms until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CheckGoroutines fails the test if more goroutines run after it (and its
// cleanups) than before. Call it first in the test.
func CheckGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d goroutines, %d before\n%s", runtime.NumGoroutine(), before, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// Ctx returns a context with timeout d, cancelled at the end of the test.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
