package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/sshgw/dialer"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/sshtest"
	"github.com/tunnelmesh/tunnelmesh/sshgw/packetport"
	"github.com/tunnelmesh/tunnelmesh/testkit/daemontest"
)

// The built binary, configured with a key file and a fixed allow list,
// carries a peer's packets to the agent's packet port and back.
func TestBinary(t *testing.T) {
	bin := daemontest.Build(t, ".", "tunnelmesh-sshgw")
	dir := t.TempDir()
	gwKey, peer := sshtest.Key(t), sshtest.Key(t)
	pem, _ := gwKey.MarshalOpenSSH("gw")
	keyPath := filepath.Join(dir, "node_key")
	os.WriteFile(keyPath, pem, 0o600)

	got := make(chan []byte, 4)
	pp, err := packetport.Listen(packetport.Config{Logger: sshtest.Quiet, OnPacket: func(c *packetport.Conn, p []byte) {
		got <- bytes.Clone(p)
		c.Send(append([]byte("agent:"), p...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	ppDone := make(chan error, 1)
	go func() { ppDone <- pp.Serve(context.Background()) }()
	t.Cleanup(func() { pp.Close(); <-ppDone })

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("listen: %q\nkey_file: %q\nallow_keys: [%q]\nforward_to: %q\n", addr, keyPath, peer.Public().String(), pp.Addr().String())
	cfgPath := filepath.Join(dir, "sshgw.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	log := daemontest.Start(t, 10*time.Second, bin, "-config", cfgPath).Log

	atPeer := make(chan []byte, 4)
	dcfg := dialer.Config{Addr: addr, Key: peer, HostKey: gwKey.Public().SSH(), Logger: sshtest.Quiet,
		OnPacket: func(p []byte) { atPeer <- bytes.Clone(p) }}
	var c *dialer.Conn
	daemontest.Eventually(t, 10*time.Second, "gateway up", func() bool {
		c, err = dialer.Dial(context.Background(), dcfg)
		return err == nil
	})
	defer c.Close()
	c.Send([]byte("hello"))
	select {
	case p := <-got:
		if string(p) != "hello" {
			t.Errorf("packet port got %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no packet at the packet port\n%s", log.String())
	}
	select {
	case p := <-atPeer:
		if string(p) != "agent:hello" {
			t.Errorf("peer got %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer at the peer")
	}
	// A key outside allow_keys is refused.
	dcfg.Key = sshtest.Key(t)
	if _, err := dialer.Dial(context.Background(), dcfg); err == nil {
		t.Error("unknown key accepted by the binary")
	}
}
