package dialer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/sshgw/dialer"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/sshtest"
	"github.com/tunnelmesh/tunnelmesh/sshgw/packetport"
	"github.com/tunnelmesh/tunnelmesh/sshgw/server"
	"github.com/tunnelmesh/tunnelmesh/testkit/daemontest"
)

type packet struct {
	src nodekey.PublicKey
	pkt []byte
}

// agentServer runs an sshgw server in in-agent mode, delivering to a channel.
func agentServer(t *testing.T, allowed ...nodekey.PublicKey) (*sshtest.Server, chan packet) {
	got := make(chan packet, 4096)
	s := sshtest.StartServer(t, server.Config{OnPacket: func(src nodekey.PublicKey, p []byte) {
		got <- packet{src, bytes.Clone(p)}
	}}, "")
	s.SetAllowed(allowed)
	return s, got
}

func dialCfg(s *sshtest.Server, key nodekey.PrivateKey, got chan []byte) dialer.Config {
	return dialer.Config{
		Addr: s.Addr, Key: key, HostKey: s.Key.Public().SSH(), Mode: dialer.ModeSSHGW,
		OnPacket: func(p []byte) { got <- bytes.Clone(p) },
		Timeout:  5 * time.Second, Logger: sshtest.Quiet,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
}

func expect[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func TestExchangeWithSSHGW(t *testing.T) {
	daemontest.CheckGoroutines(t)
	node := sshtest.Key(t)
	s, atServer := agentServer(t, node.Public())
	atNode := make(chan []byte, 16)
	c, err := dialer.Dial(sshtest.Ctx(t, 10*time.Second), dialCfg(s, node, atNode))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	for i := range 5 {
		if err := c.Send(fmt.Appendf(nil, "to server %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		p := expect(t, atServer, "packet at server")
		if p.src != node.Public() || string(p.pkt) != fmt.Sprintf("to server %d", i) {
			t.Fatalf("server got (%s, %q), want (%s, %q)", p.src.ShortID(), p.pkt, node.Public().ShortID(), fmt.Sprintf("to server %d", i))
		}
	}
	daemontest.Eventually(t, 5*time.Second, "peer registered", func() bool { return len(s.Peers()) == 1 })
	big := bytes.Repeat([]byte{0x5a}, 65535)
	if err := s.Send(node.Public(), big); err != nil {
		t.Fatal(err)
	}
	if got := expect(t, atNode, "packet at node"); !bytes.Equal(got, big) {
		t.Errorf("node got %d bytes, want the 65535-byte packet", len(got))
	}
	if err := s.Send(sshtest.Key(t).Public(), []byte("x")); !errors.Is(err, server.ErrNoPeer) {
		t.Errorf("Send to a peer without a channel = %v, want ErrNoPeer", err)
	}
	if err := c.Send(nil); err == nil {
		t.Error("Send(empty) = nil, want error")
	}
}

func TestUnknownClientKeyRefused(t *testing.T) {
	daemontest.CheckGoroutines(t)
	s, _ := agentServer(t, sshtest.Key(t).Public())
	_, err := dialer.Dial(sshtest.Ctx(t, 10*time.Second), dialCfg(s, sshtest.Key(t), make(chan []byte)))
	if err == nil {
		t.Fatal("Dial with a key outside the mesh succeeded")
	}
	t.Logf("refused: %v", err)
}

func TestWrongHostKeyRefused(t *testing.T) {
	daemontest.CheckGoroutines(t)
	node := sshtest.Key(t)
	s, _ := agentServer(t, node.Public())
	cfg := dialCfg(s, node, make(chan []byte))
	cfg.HostKey = sshtest.Key(t).Public().SSH() // another node's key
	_, err := dialer.Dial(sshtest.Ctx(t, 10*time.Second), cfg)
	if !errors.Is(err, dialer.ErrHostKey) {
		t.Fatalf("Dial with the wrong host key = %v, want ErrHostKey", err)
	}
	cfg.HostKey = nil
	if _, err := dialer.Dial(sshtest.Ctx(t, 10*time.Second), cfg); err == nil {
		t.Fatal("Dial without a host key succeeded")
	}
}

func TestRemovedKeyCutOff(t *testing.T) {
	daemontest.CheckGoroutines(t)
	node, other := sshtest.Key(t), sshtest.Key(t)
	s, atServer := agentServer(t, node.Public(), other.Public())
	c, err := dialer.Dial(sshtest.Ctx(t, 10*time.Second), dialCfg(s, node, make(chan []byte, 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	oc, err := dialer.Dial(sshtest.Ctx(t, 10*time.Second), dialCfg(s, other, make(chan []byte, 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	c.Send([]byte("before"))
	expect(t, atServer, "packet before removal")

	s.SetAllowed([]nodekey.PublicKey{other.Public()})
	select {
	case <-c.Done():
	case <-time.After(time.Minute):
		t.Fatal("connection of the removed node still open")
	}
	if _, err := dialer.Dial(sshtest.Ctx(t, 10*time.Second), dialCfg(s, node, make(chan []byte))); err == nil {
		t.Error("removed node could dial again")
	}
	// The remaining node is unaffected.
	if err := oc.Send([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if p := expect(t, atServer, "packet from the remaining node"); p.src != other.Public() {
		t.Errorf("packet from %s, want %s", p.src.ShortID(), other.Public().ShortID())
	}
}

// Standalone mode: the server copies each packet channel to the agent's
// packet port.
func TestForwardToPacketPort(t *testing.T) {
	daemontest.CheckGoroutines(t)
	got := make(chan []byte, 16)
	pp, err := packetport.Listen(packetport.Config{
		OnPacket: func(c *packetport.Conn, p []byte) {
			got <- bytes.Clone(p)
			c.Send(append([]byte("echo "), p...))
		},
		Logger: sshtest.Quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ppDone := make(chan error, 1)
	go func() { ppDone <- pp.Serve(context.Background()) }()
	t.Cleanup(func() { pp.Close(); <-ppDone })

	node := sshtest.Key(t)
	s := sshtest.StartServer(t, server.Config{ForwardTo: pp.Addr().String()}, "")
	s.SetAllowed([]nodekey.PublicKey{node.Public()})
	atNode := make(chan []byte, 16)
	c, err := dialer.Dial(sshtest.Ctx(t, 10*time.Second), dialCfg(s, node, atNode))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Send([]byte("ping"))
	if p := expect(t, got, "packet at packet port"); string(p) != "ping" {
		t.Errorf("packet port got %q, want ping", p)
	}
	if p := expect(t, atNode, "echo at node"); string(p) != "echo ping" {
		t.Errorf("node got %q, want %q", p, "echo ping")
	}
	// The agent drops the packet-port connection: the peer's SSH channel
	// must end too, not stay half open.
	conns := pp.Conns()
	if len(conns) != 1 {
		t.Fatalf("packet port has %d connections, want 1", len(conns))
	}
	conns[0].Close()
	select {
	case <-c.Done():
	case <-time.After(time.Minute):
		t.Fatal("SSH channel still open after the packet port closed its side")
	}
}

func TestClientReconnects(t *testing.T) {
	daemontest.CheckGoroutines(t)
	node := sshtest.Key(t)
	s, atServer := agentServer(t, node.Public())
	cl, err := dialer.NewClient(dialCfg(s, node, make(chan []byte, 16)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Send([]byte("x")); !errors.Is(err, dialer.ErrNotConnected) {
		t.Errorf("Send before Run = %v, want ErrNotConnected", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); cl.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := cl.WaitConnected(sshtest.Ctx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}

	// Restart the server on the same address with the same host key.
	addr, key := s.Addr, s.Key
	s.Stop()
	s2 := sshtest.StartServer(t, server.Config{HostKey: key, OnPacket: func(src nodekey.PublicKey, p []byte) {
		atServer <- packet{src, bytes.Clone(p)}
	}}, addr)
	s2.SetAllowed([]nodekey.PublicKey{node.Public()})
	daemontest.Eventually(t, 10*time.Second, "reconnect", func() bool { return cl.Stats().Connects >= 2 && cl.Connected() })
	if err := cl.Send([]byte("after restart")); err != nil {
		t.Fatal(err)
	}
	if p := expect(t, atServer, "packet after restart"); string(p.pkt) != "after restart" {
		t.Errorf("server got %q", p.pkt)
	}
}

func TestConfigErrors(t *testing.T) {
	k := sshtest.Key(t)
	on := func([]byte) {}
	hk := k.Public().SSH()
	tests := []struct {
		name string
		cfg  dialer.Config
	}{
		{"no addr", dialer.Config{Key: k, HostKey: hk, OnPacket: on}},
		{"no key", dialer.Config{Addr: "h:22", HostKey: hk, OnPacket: on}},
		{"no host key", dialer.Config{Addr: "h:22", Key: k, OnPacket: on}},
		{"no callback", dialer.Config{Addr: "h:22", Key: k, HostKey: hk}},
		{"direct-tcpip without port", dialer.Config{Addr: "h:22", Key: k, HostKey: hk, OnPacket: on, Mode: dialer.ModeDirectTCPIP}},
		{"unknown mode", dialer.Config{Addr: "h:22", Key: k, HostKey: hk, OnPacket: on, Mode: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := dialer.NewClient(tt.cfg); err == nil {
				t.Errorf("NewClient(%+v) = nil error", tt.cfg)
			}
		})
	}
}
