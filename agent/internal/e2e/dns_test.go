package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
)

var (
	meshdnsOnce sync.Once
	meshdnsBin  string
	meshdnsErr  error
)

// buildMeshDNS compiles tunnelmesh-meshdns (module meshdns, next to agent in
// the repository) once per test binary.
func buildMeshDNS(t *testing.T) string {
	t.Helper()
	meshdnsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tunnelmesh-e2e-meshdns-")
		if err != nil {
			meshdnsErr = err
			return
		}
		src, err := filepath.Abs(filepath.Join("..", "..", "..", "meshdns"))
		if err != nil {
			meshdnsErr = err
			return
		}
		if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
			meshdnsErr = fmt.Errorf("meshdns module not found next to agent: %v", err)
			return
		}
		meshdnsBin = filepath.Join(dir, "tunnelmesh-meshdns")
		cmd := exec.Command("go", "build", "-o", meshdnsBin, "./cmd/tunnelmesh-meshdns")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			meshdnsErr = fmt.Errorf("go build tunnelmesh-meshdns: %v\n%s", err, out)
		}
	})
	if meshdnsErr != nil {
		t.Fatal(meshdnsErr)
	}
	return meshdnsBin
}

// adminToken creates a reusable join token with extra flags (e.g. --tag).
// defaultPolicyCoordinator starts coordinator name in ns, listening on
// ip:8443 (STUN on ip:3478) with the built-in default policy as its first
// policy version, and returns its config file.
func (l *lab) defaultPolicyCoordinator(ns, name, ip, logLevel string) string {
	l.t.Helper()
	polPath := filepath.Join(l.Dir(), name+"-policy.yaml")
	if err := os.WriteFile(polPath, policy.DefaultYAML, 0o600); err != nil {
		l.t.Fatal(err)
	}
	cfgPath := filepath.Join(l.Dir(), name+".yaml")
	cfg := fmt.Sprintf("listen: %s:8443\ndata_dir: %s\nmesh_cidr: 100.64.0.0/16\nstun_listen: %s:3478\nlog_level: %s\npolicy_file: %s\n",
		ip, filepath.Join(l.Dir(), name), ip, logLevel, polPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		l.t.Fatal(err)
	}
	l.Start(ns, name, l.bin, "coordinator", "--config", cfgPath)
	return cfgPath
}

// applyDefaultPolicyWith applies, through the coordinator of cfgPath in
// ns, the built-in default policy followed by more (YAML sections), as the
// file name.yaml, and returns when the apply returned.
func (l *lab) applyDefaultPolicyWith(ns, cfgPath, name, more string) time.Time {
	l.t.Helper()
	file := filepath.Join(l.Dir(), name+".yaml")
	if err := os.WriteFile(file, append(slices.Clip(policy.DefaultYAML), more...), 0o600); err != nil {
		l.t.Fatal(err)
	}
	if out, err := l.Run(ns, time.Minute, l.bin, "policy", "apply", "--config", cfgPath, "-f", file); err != nil {
		l.t.Fatalf("policy apply %s: %v\n%s", name, err, out)
	}
	return time.Now()
}

func (l *lab) adminToken(ns, cfgPath string, extra ...string) string {
	l.t.Helper()
	return l.JoinToken(ns, l.bin, cfgPath, extra...)
}

// withResolvConf runs args in ns inside a private mount namespace where
// resolvConf is bind-mounted over /etc/resolv.conf: the system resolver
// (glibc: getent, ping) sees the file the node manages, and the host's
// /etc/resolv.conf is never touched. Each call mounts the file anew, so it
// sees the current file even after the agent renamed a new one over it.
func (l *lab) withResolvConf(ns, resolvConf string, timeout time.Duration, args ...string) (string, error) {
	sh := []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" /etc/resolv.conf && exec "$@"`, resolvConf}
	return l.Run(ns, timeout, append(sh, args...)...)
}

// TestMeshDNS is the mesh DNS lab: a coordinator with the default policy;
// node ns1 (tagged dns, --advertise-dns) with tunnelmesh-meshdns beside it
// in its namespace; nodea, whose agent manages a private resolv.conf
// (--dns-mode resolvconf); nodeb; later noded. From nodea: dig at the
// server, names and reverse lookups through the system resolver, ping by
// name; a new node resolves, a removed one stops resolving; nodea's file is
// restored when its agent stops.
func TestMeshDNS(t *testing.T) {
	for _, tool := range []string{"dig", "getent", "ping", "unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil && os.Geteuid() == 0 {
			t.Fatalf("needs %s (dnsutils, libc-bin, iputils-ping, util-linux, mount): %v", tool, err)
		}
	}
	l := newLab(t)
	meshdns := buildMeshDNS(t)
	hostResolv, hostErr := os.ReadFile("/etc/resolv.conf")

	cns := l.addHost("c", 1)
	nss := map[string]string{}
	for i, h := range []string{"nodea", "nodeb", "ns1", "noded"} {
		nss[h] = l.addHost(h, 11+i)
	}
	cfgPath := l.defaultPolicyCoordinator(cns, "coord-dns", coordIP, "debug")
	tok := l.adminToken(cns, cfgPath)
	dnsTok := l.adminToken(cns, cfgPath, "--tag", "dns")

	// The DNS node: its agent publishes the service; meshdns reads the
	// credentials the agent saved. Every node but nodea leaves the
	// resolver alone (they share the host's /etc/resolv.conf).
	ns1 := l.join(nss["ns1"], "ns1", "ns1", "", coordURL, dnsTok, "--advertise-dns", "--dns=false")
	s := l.waitStatus(ns1, 20*time.Second, "joined", func(s localapi.Status) bool { return s.IP.IsValid() })
	dnsIP := s.IP.String()
	corefile := filepath.Join(l.Dir(), "Corefile")
	if err := os.WriteFile(corefile, []byte(fmt.Sprintf(`mesh 100.64.0.0/16 {
    errors
    log
    meshdns {
        credentials %s
        ttl 5
    }
}
`, filepath.Join(ns1.stateDir, "credentials.json"))), 0o600); err != nil {
		t.Fatal(err)
	}
	l.Start(nss["ns1"], "meshdns", meshdns, "-conf", corefile)

	nodeb := l.join(nss["nodeb"], "nodeb", "nodeb", "", coordURL, tok, "--dns=false")
	resolv := filepath.Join(l.Dir(), "nodea-resolv.conf")
	orig := "# nodea's own resolv.conf\nnameserver " + coordIP + "\n"
	if err := os.WriteFile(resolv, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	nodea := l.join(nss["nodea"], "nodea", "nodea", "", coordURL, tok, "--dns-mode", "resolvconf", "--resolv-conf", resolv)
	bIP := l.waitStatus(nodeb, 20*time.Second, "joined", func(s localapi.Status) bool { return s.IP.IsValid() }).IP.String()
	l.waitStatus(nodea, 20*time.Second, "two peers", func(s localapi.Status) bool { return len(s.Peers) == 2 })

	// nodea's agent puts the mesh server in front of its file.
	waitFor(t, 20*time.Second, "nodea's resolv.conf names ns1", func() (bool, string) {
		b, _ := os.ReadFile(resolv)
		return bytes.Contains(b, []byte("nameserver "+dnsIP+"\n")) && bytes.HasSuffix(b, []byte(orig)), string(b)
	})

	a := nss["nodea"]
	dig := func(args ...string) (string, error) {
		out, err := l.Run(a, 10*time.Second, append([]string{"dig", "@" + dnsIP, "+time=1", "+tries=1"}, args...)...)
		return strings.TrimSpace(out), err
	}
	sys := func(args ...string) (string, error) {
		out, err := l.withResolvConf(a, resolv, 15*time.Second, args...)
		return strings.TrimSpace(out), err
	}

	t.Run("dig at the mesh server", func(t *testing.T) {
		waitFor(t, 20*time.Second, "dig nodeb.mesh answers", func() (bool, string) {
			out, err := dig("+short", "nodeb.mesh")
			return err == nil && out == bIP, fmt.Sprintf("%q, %v", out, err)
		})
		if out, err := dig("+short", "-x", bIP); err != nil || out != "nodeb.mesh." {
			t.Errorf("dig -x %s = %q, %v; want nodeb.mesh.", bIP, out, err)
		}
		if out, err := dig("nosuch.mesh"); err != nil || !strings.Contains(out, "status: NXDOMAIN") {
			t.Errorf("dig nosuch.mesh = %q, %v; want NXDOMAIN", out, err)
		}
	})
	t.Run("system resolver", func(t *testing.T) {
		if out, err := sys("getent", "hosts", "nodeb.mesh"); err != nil || !strings.HasPrefix(out, bIP+" ") {
			t.Errorf("getent hosts nodeb.mesh = %q, %v; want %s", out, err, bIP)
		}
		if out, err := sys("getent", "hosts", bIP); err != nil || !strings.Contains(out, "nodeb.mesh") {
			t.Errorf("getent hosts %s (reverse) = %q, %v; want nodeb.mesh", bIP, out, err)
		}
		if out, err := sys("ping", "-c1", "-W2", "nodeb.mesh"); err != nil || !strings.Contains(out, bIP) {
			t.Errorf("ping -c1 nodeb.mesh = %q, %v", out, err)
		}
		if out, err := l.Run(a, 10*time.Second, l.bin, "ping", "--state-dir", nodea.stateDir, "nodeb.mesh"); err != nil || !strings.Contains(out, "pong from nodeb") {
			t.Errorf("tunnelmesh ping nodeb.mesh = %q, %v", out, err)
		}
	})
	t.Run("join and removal", func(t *testing.T) {
		start := time.Now()
		noded := l.join(nss["noded"], "noded", "noded", "", coordURL, tok, "--dns=false")
		var dIP string
		waitFor(t, 20*time.Second, "noded.mesh resolves on nodea", func() (bool, string) {
			out, err := sys("getent", "hosts", "noded.mesh")
			if err != nil {
				return false, err.Error()
			}
			dIP = strings.Fields(out)[0]
			return true, out
		})
		joined := time.Since(start)
		st := l.waitStatus(noded, 20*time.Second, "joined", func(s localapi.Status) bool { return s.IP.IsValid() })
		if st.IP.String() != dIP {
			t.Errorf("noded.mesh resolved to %s, noded has %s", dIP, st.IP)
		}
		t.Logf("noded.mesh resolved on nodea %v after its join started (target: within 2 s)", joined.Round(time.Millisecond))

		start = time.Now()
		l.Must("ip", "netns", "exec", cns, l.bin, "admin", "--config", cfgPath, "nodes", "remove", "noded")
		waitFor(t, 20*time.Second, "noded.mesh stops resolving on nodea", func() (bool, string) {
			out, err := sys("getent", "hosts", "noded.mesh")
			return err != nil, out
		})
		t.Logf("noded.mesh stopped resolving on nodea %v after its removal", time.Since(start).Round(time.Millisecond))
		if out, err := dig("noded.mesh"); err != nil || !strings.Contains(out, "status: NXDOMAIN") {
			t.Errorf("dig noded.mesh after removal = %q, %v; want NXDOMAIN", out, err)
		}
		if out, err := dig("+short", "-x", dIP); err != nil || out != "" {
			t.Errorf("dig -x %s after removal = %q, %v; want no answer", dIP, out, err)
		}
	})

	// Stopping nodea's agent gives its file back, byte for byte.
	if err := nodea.p.Stop(t); err != nil {
		t.Errorf("nodea exit: %v", err)
	}
	if b, err := os.ReadFile(resolv); err != nil || string(b) != orig {
		t.Errorf("nodea's resolv.conf after its agent stopped = %q, %v; want %q", b, err, orig)
	}
	if b, err := os.ReadFile("/etc/resolv.conf"); hostErr == nil && (err != nil || !bytes.Equal(b, hostResolv)) {
		t.Errorf("the host's /etc/resolv.conf changed during the test: %q, %v", b, err)
	}
}

// waitFor polls ok every 100 ms until it holds, failing after timeout with
// the last detail ok gave.
func waitFor(t *testing.T, timeout time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		good, detail := ok()
		if good {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
