package natlab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/netnslab"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/state"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

const sshdPath = "/usr/sbin/sshd"

// sshLab is two hosts on the lab's internet, a at .20 and b at .30, that
// cannot exchange UDP (iptables in a), with the coordinator's relay
// disabled: SSH over TCP is the only way between them.
type sshLab struct {
	*lab
	tok                string
	nsA, nsB, ipA, ipB string
	aKey               nodekey.PrivateKey
	aKeyFile           string
}

func newSSHLab(t *testing.T) *sshLab {
	t.Helper()
	l := &sshLab{lab: newLab(t)}
	l.tok = l.coordinatorWith("relay:\n  disabled: true\n")
	l.nsA, l.ipA = l.public("a", 20)
	l.nsB, l.ipB = l.public("b", 30)
	for _, rule := range [][]string{
		{"-A", "OUTPUT", "-p", "udp", "-d", l.ipB, "-j", "DROP"},
		{"-A", "INPUT", "-p", "udp", "-s", l.ipB, "-j", "DROP"},
	} {
		l.Must(append([]string{"ip", "netns", "exec", l.nsA, "iptables"}, rule...)...)
	}
	var err error
	if l.aKey, err = nodekey.Generate(); err != nil {
		t.Fatal(err)
	}
	pem, err := l.aKey.MarshalOpenSSH("a")
	if err != nil {
		t.Fatal(err)
	}
	l.aKeyFile = filepath.Join(l.Dir(), "a_key")
	if err := os.WriteFile(l.aKeyFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *sshLab) joinA() *node {
	return l.join(l.nsA, "a", l.tok, "--key", l.aKeyFile)
}

// startSSHD runs Debian's sshd -D in b's namespace on ipB:22 with a host key
// of its own, authorising a's node key for direct-tcpip to 127.0.0.1:pp
// only, as root (the account peers log in as). It returns the host key.
func (l *sshLab) startSSHD(pp int) nodekey.PrivateKey {
	l.t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		testenv.Missing(l.t, "needs openssh-server (apt-get install -y --no-install-recommends openssh-server): "+err.Error())
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation directory
		l.t.Fatal(err)
	}
	hk, err := nodekey.Generate()
	if err != nil {
		l.t.Fatal(err)
	}
	hkPEM, err := hk.MarshalOpenSSH("b host key")
	if err != nil {
		l.t.Fatal(err)
	}
	dir := filepath.Join(l.Dir(), "sshd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		l.t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			l.t.Fatal(err)
		}
		return p
	}
	hostKey := write("ssh_host_ed25519_key", string(hkPEM))
	authKeys := write("authorized_keys",
		fmt.Sprintf("restrict,port-forwarding,permitopen=\"127.0.0.1:%d\" %s a\n", pp, l.aKey.Public()))
	cfg := write("sshd_config", strings.Join([]string{
		"Port 22",
		"ListenAddress " + l.ipB,
		"HostKey " + hostKey,
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
	}, "\n"))
	p := l.Start(l.nsB, "sshd", sshdPath, "-D", "-e", "-f", cfg)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p.Exited() {
			b, _ := os.ReadFile(p.Log)
			l.t.Fatalf("sshd exited: %v\n%s", p.Err(), b)
		}
		if _, err := l.Run(l.nsA, 3*time.Second, "bash", "-c", "exec 3<>/dev/tcp/"+l.ipB+"/22"); err == nil {
			return hk
		}
		if time.Now().After(deadline) {
			l.t.Fatal("sshd not listening within 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writePub writes k's public key as an OpenSSH .pub file and returns its
// path.
func (l *sshLab) writePub(name string, k nodekey.PublicKey) string {
	l.t.Helper()
	p := filepath.Join(l.Dir(), name)
	if err := os.WriteFile(p, []byte(k.String()+" root@b\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// TestOpenSSHTransport: b runs Debian's real sshd and advertises it as its
// SSH endpoint (host key, login, packet port); a, which can reach b only
// over TCP, dials it with a direct-tcpip channel to b's packet port.
func TestOpenSSHTransport(t *testing.T) {
	needRoot(t)
	t.Run("ping and transfer", func(t *testing.T) {
		l := newSSHLab(t)
		hk := l.startSSHD(7600)
		a := l.joinA()
		b := l.join(l.nsB, "b", l.tok, "--packet-port", "127.0.0.1:7600", "--ssh-advertise", l.ipB+":22",
			"--ssh-openssh-host-key", l.writePub("b_host.pub", hk.Public()), "--ssh-user", "root")
		l.connect(t, a, b, "ssh "+l.ipB+":22", "ssh in")
	})
	t.Run("wrong host key published", func(t *testing.T) {
		l := newSSHLab(t)
		l.startSSHD(7600)
		other, err := nodekey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		a := l.joinA()
		b := l.join(l.nsB, "b", l.tok, "--packet-port", "127.0.0.1:7600", "--ssh-advertise", l.ipB+":22",
			"--ssh-openssh-host-key", l.writePub("wrong.pub", other.Public()), "--ssh-user", "root")
		l.waitPeer(a, 30*time.Second)
		l.waitPeer(b, 30*time.Second)
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if l.pingOnce(a.ns, b.ip) {
				t.Fatalf("ping a -> b got through with a wrong host key published; path %q", l.path(a))
			}
		}
		if p := l.path(a); strings.HasPrefix(p, "ssh") {
			t.Fatalf("a's path to b is %q with a wrong host key published", p)
		}
		log, _ := os.ReadFile(a.p.Log)
		if !strings.Contains(string(log), "ssh host key does not match") {
			t.Fatalf("a's log does not show the host key refused")
		}
	})
}

// TestStandaloneSSHGW: b runs tunnelmesh-sshgw (host key = b's node key,
// allow-set from b's netmap) next to its agent's packet port; a reaches b
// through it, UDP and the relay being unavailable.
func TestStandaloneSSHGW(t *testing.T) {
	needRoot(t)
	sshgw := netnslab.Build(t, "github.com/tunnelmesh/tunnelmesh/sshgw/cmd/tunnelmesh-sshgw")
	l := newSSHLab(t)
	a := l.joinA()
	b := l.join(l.nsB, "b", l.tok, "--packet-port", "127.0.0.1:7600", "--ssh-advertise", l.ipB+":2222")
	creds := filepath.Join(b.stateDir, state.CredentialsFile)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(creds); err == nil {
			break
		}
		if time.Now().After(deadline) || b.p.Exited() {
			t.Fatalf("b did not join: no %s", creds)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.Start(l.nsB, "sshgw", sshgw, "-credentials", creds, "-forward-to", "127.0.0.1:7600", "-listen", l.ipB+":2222")
	l.connect(t, a, b, "ssh "+l.ipB+":2222", "ssh in")
}
