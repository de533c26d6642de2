package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/relay/client"
	"github.com/tunnelmesh/tunnelmesh/relay/internal/relaytest"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
)

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The built binary with a self-signed certificate and allow_keys relays
// between two allowed nodes, refuses a third, and exports its metrics.
func TestBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command: ", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tunnelmesh-relay")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	a, b := mustKey(t), mustKey(t)
	addr, metrics := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf("listen: %q\nid: relay-bin\nmetrics: %q\ntls: {state_dir: %q}\nallow_keys: [%q, %q]\n",
		addr, metrics, filepath.Join(dir, "state"), a.Public().String(), b.Public().String())
	cfgPath := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	var log syncBuffer
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("tunnelmesh-relay exit: %v\n%s", err, log.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("tunnelmesh-relay did not stop on SIGINT\n%s", log.String())
		}
	}
	t.Cleanup(stop)

	var pin string
	relaytest.Eventually(t, 10*time.Second, "self-signed certificate", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "state", "relay.crt"))
		if err != nil {
			return false
		}
		blk, _ := pem.Decode(b)
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		pin = tlspin.Fingerprint(cert)
		return true
	})
	if !strings.Contains(log.String(), pin) {
		relaytest.Eventually(t, 5*time.Second, "pin in the log", func() bool { return strings.Contains(log.String(), pin) })
	}
	got := make(chan string, 4)
	run := func(k nodekey.PrivateKey) *client.Client {
		c, err := client.New(client.Config{URL: "wss://" + addr + "/relay", Key: k, TLSPin: pin, RelayID: "relay-bin",
			Proxy: client.ProxyDirect, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			OnPacket: func(src nodekey.PublicKey, p []byte) { got <- src.ShortID() + ":" + string(p) }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return c
	}
	ca, cb := run(a), run(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ca.WaitConnected(ctx); err != nil {
		t.Fatalf("a: %v\n%s", err, log.String())
	}
	if err := cb.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ca.Send(b.Public(), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != a.Public().ShortID()+":hi" {
			t.Errorf("b got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no packet through the relay binary")
	}
	stranger := run(mustKey(t))
	relaytest.Eventually(t, 10*time.Second, "stranger refused", func() bool { return stranger.Stats().Failures > 0 })
	if stranger.Connected() {
		t.Error("key outside allow_keys connected")
	}

	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"tunnelmesh_relay_frames_forwarded_total 1", "tunnelmesh_relay_connections 2",
		`tunnelmesh_relay_handshakes_total{result="unauthorized"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	stop()
}

func mustKey(t *testing.T) nodekey.PrivateKey {
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
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
