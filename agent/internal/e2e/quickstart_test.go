package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
)

// machine is a namespace that stands in for one machine of the README's
// quick start: its own hostname, and its own /var/lib and /etc/resolv.conf
// (a private mount namespace per command), so that the commands run exactly
// as the README writes them, with every default path.
type machine struct {
	name   string
	ns     string
	dir    string // working directory of its commands
	varLib string // mounted on /var/lib
	resolv string // mounted on /etc/resolv.conf
}

func (l *lab) machine(name string, octet int) *machine {
	l.t.Helper()
	m := &machine{name: name, ns: l.addHost(name, octet), dir: filepath.Join(l.Dir(), "machine-"+name)}
	m.varLib = filepath.Join(m.dir, "var-lib")
	m.resolv = filepath.Join(m.dir, "resolv.conf")
	if err := os.MkdirAll(m.varLib, 0o700); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(m.resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return m
}

// argv wraps the shell command line cmd (with tunnelmesh on PATH) so that
// it runs on machine m.
func (l *lab) argv(m *machine, cmd string) []string {
	script := `set -e
echo "$MACHINE" > /proc/sys/kernel/hostname
mount --bind "$VARLIB" /var/lib
mount --bind "$RESOLV" /etc/resolv.conf
cd "$WORKDIR"
exec ` + cmd
	return []string{"env", "PATH=" + filepath.Dir(l.bin) + ":" + os.Getenv("PATH"),
		"MACHINE=" + m.name, "VARLIB=" + m.varLib, "RESOLV=" + m.resolv, "WORKDIR=" + m.dir,
		"unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script}
}

func (l *lab) on(m *machine, timeout time.Duration, cmd string) (string, error) {
	return l.Run(m.ns, timeout, l.argv(m, cmd)...)
}

// TestQuickStart follows the README's "Quick start on real machines"
// literally: an empty coordinator.yaml, a token per node from `tunnelmesh
// admin`, `tunnelmesh join --coordinator https://HOST:8443 --token TOKEN`
// on two machines. With no policy configured the built-in default policy
// is in force: kernel ping and tunnelmesh ping work both ways, TCP does
// not. Applying a policy then replaces the default.
func TestQuickStart(t *testing.T) {
	l := newLab(t)
	coord := l.machine("coord", 1)
	nodes := []*machine{l.machine("alpha", 11), l.machine("bravo", 12)}
	if err := os.WriteFile(filepath.Join(coord.dir, "coordinator.yaml"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l.Start(coord.ns, "coordinator", l.argv(coord, "tunnelmesh coordinator --config coordinator.yaml")...)

	token := func() string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := l.on(coord, 30*time.Second, "tunnelmesh admin --config coordinator.yaml tokens create")
			if err == nil {
				return strings.TrimSpace(out)
			}
			if time.Now().After(deadline) {
				t.Fatalf("tokens create: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, m := range nodes {
		tok := token()
		l.Start(m.ns, m.name, l.argv(m, "tunnelmesh join --coordinator https://"+coordIP+":8443 --token "+tok)...)
	}

	status := func(m *machine) (localapi.Status, error) {
		out, err := l.on(m, 30*time.Second, "tunnelmesh status --json")
		if err != nil {
			return localapi.Status{}, err
		}
		var s localapi.Status
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			return s, fmt.Errorf("status json: %v: %q", err, out)
		}
		return s, nil
	}
	ips := map[string]string{}
	for _, m := range nodes {
		deadline := time.Now().Add(60 * time.Second)
		for {
			s, err := status(m)
			if err == nil && len(s.Peers) == 1 {
				if s.Name != m.name {
					t.Fatalf("node on machine %s is named %q, want its hostname", m.name, s.Name)
				}
				ips[m.name] = s.IP.String()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no peer within 60 s: status %+v, %v", m.name, s, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// Both ways: the kernel's ping by mesh IP and tunnelmesh ping by name.
	for i, m := range nodes {
		other := nodes[1-i]
		var out string
		var err error
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err = l.Run(m.ns, 30*time.Second, "ping", "-c", "1", "-W", "2", ips[other.name])
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("ping %s from %s under the default policy: %v\n%s", ips[other.name], m.name, err, out)
		}
		if out, err = l.on(m, 60*time.Second, "tunnelmesh ping "+other.name); err != nil || !strings.Contains(out, "pong from "+other.name) {
			t.Fatalf("tunnelmesh ping %s on %s = %q, %v", other.name, m.name, out, err)
		}
	}

	// Default deny for everything else: nothing connects to bravo's ports.
	alpha, bravo := nodes[0], nodes[1]
	l.Start(bravo.ns, "serve", l.tool, "serve", ips["bravo"], "22", "80")
	scan := func() string {
		t.Helper()
		out, err := l.Run(alpha.ns, 2*time.Minute, l.tool, "scan", ips["bravo"], "22,80", "2s")
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}
	// Bravo's server is up: it answers on its own mesh address.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := l.Run(bravo.ns, 2*time.Minute, l.tool, "scan", ips["bravo"], "22,80", "2s")
		if err == nil && strings.Contains(out, "open=[22 80]") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bravo's own scan of its server = %q, %v", out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := scan(); !strings.Contains(got, "open=[]") {
		t.Fatalf("alpha -> bravo tcp under the default policy = %q, want nothing open", got)
	}

	// An applied policy wins: tcp/80 only, so 80 opens and ping stops.
	pol := filepath.Join(coord.dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("rules:\n  - {name: web, from: \"*\", to: \"*\", proto: tcp, ports: [80]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := l.on(coord, 60*time.Second, "tunnelmesh policy apply --config coordinator.yaml -f policy.yaml"); err != nil {
		t.Fatalf("policy apply: %v\n%s", err, out)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		got := scan()
		if strings.Contains(got, "open=[80]") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alpha -> bravo tcp after applying tcp/80 = %q, want open=[80]", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, err := l.Run(alpha.ns, 30*time.Second, "ping", "-c", "2", "-W", "2", ips["bravo"]); err == nil {
		t.Fatalf("ping answered under a policy without icmp:\n%s", out)
	}
}
