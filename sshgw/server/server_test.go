package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/sshtest"
	"github.com/tunnelmesh/tunnelmesh/sshgw/server"
	"github.com/tunnelmesh/tunnelmesh/testkit/daemontest"
)

func clientConfig(t *testing.T, s *sshtest.Server, auth ...ssh.AuthMethod) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User:            "root",
		Auth:            auth,
		HostKeyCallback: ssh.FixedHostKey(s.Key.Public().SSH()),
		Timeout:         5 * time.Second,
	}
}

func signer(t *testing.T, k nodekey.PrivateKey) ssh.Signer {
	s, err := k.Signer()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dialAllowed starts a server that allows one node key and returns it with
// an SSH client of that node, closed when the test ends.
func dialAllowed(t *testing.T) (*sshtest.Server, *ssh.Client) {
	t.Helper()
	node := sshtest.Key(t)
	s := sshtest.StartServer(t, server.Config{OnPacket: func(nodekey.PublicKey, []byte) {}}, "")
	s.SetAllowed([]nodekey.PublicKey{node.Public()})
	c, err := ssh.Dial("tcp", s.Addr, clientConfig(t, s, ssh.PublicKeys(signer(t, node))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s, c
}

// An authenticated mesh node gets the packet channel and nothing else.
func TestOnlyThePacketChannel(t *testing.T) {
	daemontest.CheckGoroutines(t)
	s, c := dialAllowed(t)

	if sess, err := c.NewSession(); err == nil {
		sess.Close()
		t.Error("session channel (shell/exec) accepted")
	}
	if conn, err := c.Dial("tcp", s.Addr); err == nil {
		conn.Close()
		t.Error("direct-tcpip (local port forwarding) accepted")
	}
	if l, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
		t.Error("tcpip-forward (remote port forwarding) accepted")
	}
	if ok, _, err := c.SendRequest("auth-agent-req@openssh.com", true, nil); ok || err != nil {
		t.Errorf("agent forwarding request = %v, %v; want refused", ok, err)
	}
	ch, reqs, err := c.OpenChannel(server.ChannelType, nil)
	if err != nil {
		t.Fatalf("packet channel refused: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	ch.Close()
	if _, _, err := c.OpenChannel(server.ChannelType, []byte("extra")); err == nil {
		t.Error("packet channel with extra data accepted")
	}
}

func TestAuthRefusals(t *testing.T) {
	daemontest.CheckGoroutines(t)
	node := sshtest.Key(t)
	s := sshtest.StartServer(t, server.Config{OnPacket: func(nodekey.PublicKey, []byte) {}}, "")
	s.SetAllowed([]nodekey.PublicKey{node.Public()})
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := ssh.NewSignerFromKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		auth []ssh.AuthMethod
	}{
		{"no auth (none method)", nil},
		{"password", []ssh.AuthMethod{ssh.Password("secret")}},
		{"keyboard-interactive", []ssh.AuthMethod{ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil })}},
		{"unknown ed25519 key", []ssh.AuthMethod{ssh.PublicKeys(signer(t, sshtest.Key(t)))}},
		{"ecdsa key", []ssh.AuthMethod{ssh.PublicKeys(ecSigner)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ssh.Dial("tcp", s.Addr, clientConfig(t, s, tt.auth...))
			if err == nil {
				c.Close()
				t.Fatal("authenticated")
			}
		})
	}
}

// A connection that authenticated but never opened a channel is also cut
// when its key is removed.
func TestSetAllowedClosesIdleConnections(t *testing.T) {
	daemontest.CheckGoroutines(t)
	s, c := dialAllowed(t)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	s.SetAllowed(nil)
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("connection of the removed key still open")
	}
}

func TestHostKeyIsTheNodeKey(t *testing.T) {
	s := sshtest.StartServer(t, server.Config{OnPacket: func(nodekey.PublicKey, []byte) {}}, "")
	var got ssh.PublicKey
	cfg := &ssh.ClientConfig{User: "x", Timeout: 5 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error { got = k; return nil }}
	if c, err := ssh.Dial("tcp", s.Addr, cfg); err == nil {
		c.Close()
	}
	if got == nil || string(got.Marshal()) != string(s.Key.Public().SSH().Marshal()) {
		t.Errorf("host key = %v, want the node key %s", got, s.Key.Public())
	}
}

func TestNewErrors(t *testing.T) {
	k := sshtest.Key(t)
	on := func(nodekey.PublicKey, []byte) {}
	tests := []struct {
		name string
		cfg  server.Config
	}{
		{"no host key", server.Config{OnPacket: on}},
		{"neither mode", server.Config{HostKey: k}},
		{"both modes", server.Config{HostKey: k, OnPacket: on, ForwardTo: "127.0.0.1:1"}},
		{"bad forward address", server.Config{HostKey: k, ForwardTo: "nowhere"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := server.New(tt.cfg); err == nil {
				t.Errorf("New(%+v) = nil error", tt.cfg)
			}
		})
	}
}
