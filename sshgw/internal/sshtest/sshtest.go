// Package sshtest holds helpers for the sshgw tests: keys and a running
// sshgw server (package daemontest has polling and the goroutine leak check).
package sshtest

import (
	"context"
	"log/slog"
	"net"
	"os"
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

// Ctx returns a context with timeout d, cancelled at the end of the test.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
