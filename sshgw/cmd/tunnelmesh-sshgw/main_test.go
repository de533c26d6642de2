package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/sshgw/dialer"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/sshtest"
	"github.com/tunnelmesh/tunnelmesh/sshgw/packetport"
)

// The built binary, configured with a key file and a fixed allow list,
// carries a peer's packets to the agent's packet port and back.
func TestBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command: ", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tunnelmesh-sshgw")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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
	var log syncBuffer
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("tunnelmesh-sshgw exit: %v\n%s", err, log.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("tunnelmesh-sshgw did not stop on SIGINT\n%s", log.String())
		}
	})

	atPeer := make(chan []byte, 4)
	dcfg := dialer.Config{Addr: addr, Key: peer, HostKey: gwKey.Public().SSH(), Logger: sshtest.Quiet,
		OnPacket: func(p []byte) { atPeer <- bytes.Clone(p) }}
	var c *dialer.Conn
	sshtest.Eventually(t, 10*time.Second, "gateway up", func() bool {
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

// syncBuffer is a bytes.Buffer safe for the child process's writer and the
// test reading it at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
