package dialer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/sshgw/dialer"
	"github.com/tunnelmesh/tunnelmesh/sshgw/internal/sshtest"
	"github.com/tunnelmesh/tunnelmesh/sshgw/packetport"
	"github.com/tunnelmesh/tunnelmesh/testkit/daemontest"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

const sshdPath = "/usr/sbin/sshd"

// openSSH is a real sshd on a loopback port, configured as the README tells
// an operator to: the node key in authorized_keys, restricted to
// port forwarding to the agent's packet port only.
type openSSH struct {
	addr    string
	hostKey nodekey.PrivateKey
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startOpenSSH runs Debian's sshd for the test, authorising nodeKey for the
// packet port pp. It skips unless running as root with openssh-server
// installed.
func startOpenSSH(t testing.TB, nodeKey nodekey.PublicKey, pp uint16) *openSSH {
	t.Helper()
	testenv.NeedRoot(t, "sshd must run as root to log a user in")
	if _, err := os.Stat(sshdPath); err != nil {
		testenv.Missing(t, "needs openssh-server (apt-get install -y --no-install-recommends openssh-server): "+err.Error())
	}
	dir := t.TempDir()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation directory
		t.Fatal(err)
	}
	hk, err := nodekey.Generate() // an OpenSSH host key of its own, not the node key
	if err != nil {
		t.Fatal(err)
	}
	hkPEM, err := hk.MarshalOpenSSH("test host key")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostKeyPath := write("ssh_host_ed25519_key", string(hkPEM), 0o600)
	authKeys := write("authorized_keys",
		fmt.Sprintf("restrict,port-forwarding,permitopen=\"127.0.0.1:%d\" %s tunnelmesh-node\n", pp, nodeKey), 0o600)
	port := freePort(t)
	cfg := write("sshd_config", strings.Join([]string{
		fmt.Sprintf("Port %d", port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKeyPath,
		"AuthorizedKeysFile " + authKeys,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowTcpForwarding local",
		"AllowAgentForwarding no",
		"X11Forwarding no",
		"PermitTTY no",
		"StrictModes no",
		"UsePAM no",
		"LogLevel VERBOSE",
		"",
	}, "\n"), 0o644)
	var log bytes.Buffer
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", log.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	daemontest.Eventually(t, 10*time.Second, "sshd listening", func() bool {
		select {
		case <-exited:
			t.Fatalf("sshd exited:\n%s", log.String())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return &openSSH{addr: addr, hostKey: hk}
}

func echoPort(t testing.TB) (*packetport.Listener, chan []byte) {
	got := make(chan []byte, 4096)
	pp, err := packetport.Listen(packetport.Config{
		OnPacket: func(c *packetport.Conn, p []byte) {
			select {
			case got <- bytes.Clone(p):
			default:
			}
			c.Send(p)
		},
		Logger: sshtest.Quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pp.Serve(context.Background()) }()
	t.Cleanup(func() { pp.Close(); <-done })
	return pp, got
}

func TestOpenSSHDirectTCPIP(t *testing.T) {
	daemontest.CheckGoroutines(t)
	node := sshtest.Key(t)
	pp, atPort := echoPort(t)
	sshd := startOpenSSH(t, node.Public(), pp.Port())

	atNode := make(chan []byte, 16)
	cfg := dialer.Config{
		Addr: sshd.addr, Key: node, User: "root",
		HostKey: sshd.hostKey.Public().SSH(), Mode: dialer.ModeDirectTCPIP, PacketPort: pp.Port(),
		OnPacket: func(p []byte) { atNode <- bytes.Clone(p) },
		Timeout:  10 * time.Second, Logger: sshtest.Quiet,
	}
	c, err := dialer.Dial(sshtest.Ctx(t, 20*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		msg := fmt.Appendf(nil, "through openssh %d", i)
		if err := c.Send(msg); err != nil {
			t.Fatal(err)
		}
		if got := expect(t, atPort, "packet at the packet port"); !bytes.Equal(got, msg) {
			t.Errorf("packet port got %q, want %q", got, msg)
		}
		if got := expect(t, atNode, "echo at the node"); !bytes.Equal(got, msg) {
			t.Errorf("node got %q, want %q", got, msg)
		}
	}

	t.Run("wrong host key", func(t *testing.T) {
		bad := cfg
		bad.HostKey = node.Public().SSH() // the node key is not this server's host key
		if _, err := dialer.Dial(sshtest.Ctx(t, 20*time.Second), bad); !errors.Is(err, dialer.ErrHostKey) {
			t.Errorf("Dial = %v, want ErrHostKey", err)
		}
	})
	t.Run("key not in authorized_keys", func(t *testing.T) {
		bad := cfg
		bad.Key = sshtest.Key(t)
		if _, err := dialer.Dial(sshtest.Ctx(t, 20*time.Second), bad); err == nil {
			t.Error("Dial with an unauthorised key succeeded")
		}
	})
	t.Run("port other than the packet port", func(t *testing.T) {
		bad := cfg
		bad.PacketPort = uint16(freePort(t))
		_, err := dialer.Dial(sshtest.Ctx(t, 20*time.Second), bad)
		if err == nil {
			t.Fatal("direct-tcpip outside permitopen succeeded")
		}
		t.Logf("refused: %v", err)
	})
}
