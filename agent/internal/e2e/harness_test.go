package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
)

// lab is a set of network namespaces joined by a bridge, each host with one
// veth ("eth0") on the underlay 10.99.0.0/24. Every name carries a random
// prefix, so labs of concurrent test runs never collide, and Cleanup removes
// every namespace and process the lab made.
type lab struct {
	t      *testing.T
	prefix string
	dir    string
	bin    string // tunnelmesh
	tool   string // meshtool

	mu    sync.Mutex // guards procs and nss
	procs []*proc
	nss   []string
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veth pairs and TUN devices")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("needs the ip command (iproute2): %v", err)
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// build compiles tunnelmesh and meshtool once per test binary.
func build(t *testing.T) (bin, tool string) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "tunnelmesh-e2e-bin-")
		if buildErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{
			{"tunnelmesh", "github.com/tunnelmesh/tunnelmesh/agent/cmd/tunnelmesh"},
			{"meshtool", "github.com/tunnelmesh/tunnelmesh/agent/internal/e2e/meshtool"},
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, b.out), b.pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "tunnelmesh"), filepath.Join(buildDir, "meshtool")
}

func newLab(t *testing.T) *lab {
	needRoot(t)
	bin, tool := build(t)
	var b [3]byte
	rand.Read(b[:])
	l := &lab{t: t, prefix: "tme2e" + hex.EncodeToString(b[:]), dir: t.TempDir(), bin: bin, tool: tool}
	t.Cleanup(l.cleanup)
	br := l.addNS("br")
	l.must("ip", "-n", br, "link", "add", "br0", "type", "bridge")
	l.must("ip", "-n", br, "link", "set", "br0", "up")
	return l
}

func (l *lab) cleanup() {
	l.mu.Lock()
	procs, nss := l.procs, l.nss
	l.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	for _, ns := range nss {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	// TUNNELMESH_E2E_LOGS=1 shows the logs of passing runs too.
	if l.t.Failed() || os.Getenv("TUNNELMESH_E2E_LOGS") != "" {
		for _, p := range procs {
			b, _ := os.ReadFile(p.log)
			if len(b) > 6000 && os.Getenv("TUNNELMESH_E2E_LOGS") == "" {
				b = b[len(b)-6000:]
			}
			l.t.Logf("---- log of %s (tail) ----\n%s", p.name, b)
		}
	}
}

func (l *lab) ns(name string) string { return l.prefix + "-" + name }

func (l *lab) addNS(name string) string {
	ns := l.ns(name)
	l.must("ip", "netns", "add", ns)
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	l.must("ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// addHost makes a namespace with eth0 on the bridge at 10.99.0.<octet>.
func (l *lab) addHost(name string, octet int) string {
	ns := l.addNS(name)
	br := l.ns("br")
	veth := "v" + name
	l.must("ip", "-n", br, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.must("ip", "-n", br, "link", "set", veth, "master", "br0", "up")
	l.must("ip", "-n", ns, "addr", "add", fmt.Sprintf("10.99.0.%d/24", octet), "dev", "eth0")
	l.must("ip", "-n", ns, "link", "set", "eth0", "up")
	return ns
}

func (l *lab) must(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// run runs a command in namespace ns and returns its stdout.
func (l *lab) run(ns string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// start starts a long-running command in ns, logging to a file.
func (l *lab) start(ns, name string, args ...string) *proc {
	l.t.Helper()
	logPath := filepath.Join(l.dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		l.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// kill sends SIGKILL and waits. ip netns exec execs the command, so the
// process is the command itself.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM and waits up to 10 s; it returns the exit error.
func (p *proc) stop(t *testing.T) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit within 10 s of SIGTERM", p.name)
		p.kill()
		return p.err
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// coordinator writes a config and starts a coordinator in ns.
func (l *lab) coordinator(ns, name, listen, stun, cidr string) (cfgPath string) {
	l.t.Helper()
	dataDir := filepath.Join(l.dir, name)
	cfgPath = filepath.Join(l.dir, name+".yaml")
	// Default deny: the mesh starts with a policy that allows everything,
	// so that the tests of the data plane are not tests of the policy.
	policyPath := filepath.Join(l.dir, "allow-all.yaml")
	if err := os.WriteFile(policyPath, []byte(allowAllPolicy), 0o600); err != nil {
		l.t.Fatal(err)
	}
	cfg := fmt.Sprintf("listen: %s\ndata_dir: %s\nmesh_cidr: %s\nstun_listen: %s\nlog_level: debug\npolicy_file: %s\n",
		listen, dataDir, cidr, stun, policyPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		l.t.Fatal(err)
	}
	l.start(ns, name, l.bin, "coordinator", "--config", cfgPath)
	return cfgPath
}

const allowAllPolicy = "rules:\n  - {name: all, from: \"*\", to: \"*\", proto: any}\n"

// token creates a reusable join token, retrying while the coordinator starts.
func (l *lab) token(ns, cfgPath string) string {
	l.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := l.run(ns, 10*time.Second, l.bin, "admin", "--config", cfgPath, "tokens", "create", "--reusable")
		if err == nil {
			return strings.TrimSpace(out)
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("create token: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// node is a tunnelmesh node run by the lab.
type node struct {
	name     string
	ns       string
	stateDir string
	iface    string
	p        *proc
}

func (l *lab) join(ns, name, stateName, iface, coordURL, token string, extra ...string) *node {
	l.t.Helper()
	n := &node{name: name, ns: ns, stateDir: filepath.Join(l.dir, stateName), iface: iface}
	args := []string{l.bin, "join", "--coordinator", coordURL, "--token", token, "--name", name,
		"--state-dir", n.stateDir, "--log-level", "debug"}
	if iface != "" {
		args = append(args, "--interface", iface)
	}
	args = append(args, extra...)
	n.p = l.start(ns, stateName, args...)
	return n
}

func (l *lab) up(n *node) {
	n.p = l.start(n.ns, filepath.Base(n.stateDir), l.bin, "up", "--state-dir", n.stateDir, "--log-level", "debug")
}

func (l *lab) status(n *node) (localapi.Status, error) {
	out, err := l.run(n.ns, 10*time.Second, l.bin, "status", "--json", "--state-dir", n.stateDir)
	if err != nil {
		return localapi.Status{}, err
	}
	var s localapi.Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return s, fmt.Errorf("status json: %v: %q", err, out)
	}
	return s, nil
}

// waitStatus polls n's status until ok accepts it.
func (l *lab) waitStatus(n *node, timeout time.Duration, what string, ok func(localapi.Status) bool) localapi.Status {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var last localapi.Status
	var lastErr error
	for time.Now().Before(deadline) {
		if n.p.exited() {
			l.t.Fatalf("node %s exited: %v", n.name, n.p.err)
		}
		last, lastErr = l.status(n)
		if lastErr == nil && ok(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("node %s: %s not reached within %v; last status %+v, err %v", n.name, what, timeout, last, lastErr)
	return last
}

func peerNames(s localapi.Status) []string {
	var names []string
	for _, p := range s.Peers {
		names = append(names, p.Name)
	}
	return names
}

// ping pings ip from ns with meshtool, retrying until deadline.
func (l *lab) ping(ns, ip string, timeout time.Duration) error {
	start := time.Now()
	deadline := start.Add(timeout)
	var err error
	var out string
	for time.Now().Before(deadline) {
		if out, err = l.run(ns, 10*time.Second, l.tool, "ping", ip, "2"); err == nil {
			if el := time.Since(start); el > 2*time.Second {
				l.t.Logf("ping %s from %s answered after %v: %s", ip, ns, el, out)
			}
			return nil
		}
	}
	return err
}
