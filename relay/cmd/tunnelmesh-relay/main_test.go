package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/relay/client"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
	"github.com/tunnelmesh/tunnelmesh/testkit/daemontest"
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
	bin := daemontest.Build(t, ".", "tunnelmesh-relay")
	dir := t.TempDir()
	a, b := mustKey(t), mustKey(t)
	addr, metrics := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf("listen: %q\nid: relay-bin\nmetrics: %q\ntls: {state_dir: %q}\nallow_keys: [%q, %q]\n",
		addr, metrics, filepath.Join(dir, "state"), a.Public().String(), b.Public().String())
	cfgPath := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	relay := daemontest.Start(t, 15*time.Second, bin, "-config", cfgPath)
	log := relay.Log

	var pin string
	daemontest.Eventually(t, 10*time.Second, "self-signed certificate", func() bool {
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
		daemontest.Eventually(t, 5*time.Second, "pin in the log", func() bool { return strings.Contains(log.String(), pin) })
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
	daemontest.Eventually(t, 10*time.Second, "stranger refused", func() bool { return stranger.Stats().Failures > 0 })
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
	relay.Stop()
}

func mustKey(t *testing.T) nodekey.PrivateKey {
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
