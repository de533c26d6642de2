// Package netnslab is the root-only harness the e2e and natlab tests share:
// network namespaces with a random per-lab prefix, veth links onto bridges,
// binaries built once per test process, commands run and processes started
// inside a namespace with their output in log files, and a cleanup that
// kills every process and deletes every namespace the lab made.
package netnslab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

// logTail is how much of each process log a failed test prints; set
// TUNNELMESH_E2E_LOGS=1 to print whole logs, of passing runs too.
const logTail = 8000

// NeedRoot skips t unless it runs as root (why says what the lab needs root
// for; in CI it fails instead, see testkit/testenv) and fails it when one of
// the commands cmds is not installed.
func NeedRoot(t testing.TB, why string, cmds ...string) {
	t.Helper()
	testenv.NeedRoot(t, why)
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("needs %s: %v", c, err)
		}
	}
}

var (
	buildMu   sync.Mutex
	buildDir  string
	buildErr  error
	buildBins = map[string]*binary{}
)

type binary struct {
	once sync.Once
	path string
	err  error
}

// Build compiles the Go package pkg (CGO_ENABLED=0) once per test process
// and returns the path of the binary, named after the package's last path
// element.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	if buildDir == "" && buildErr == nil {
		buildDir, buildErr = os.MkdirTemp("", "netnslab-bin-")
	}
	dir, err := buildDir, buildErr
	b := buildBins[pkg]
	if b == nil {
		b = &binary{}
		buildBins[pkg] = b
	}
	buildMu.Unlock()
	if err != nil {
		t.Fatalf("netnslab: build dir: %v", err)
	}
	b.once.Do(func() {
		b.path = filepath.Join(dir, path.Base(pkg))
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Lab is a set of namespaces and processes owned by one test. Every
// namespace name carries the lab's random prefix, so labs of concurrent
// test runs never collide.
type Lab struct {
	t      testing.TB
	prefix string
	dir    string

	mu    sync.Mutex // guards procs and nss
	procs []*Proc
	nss   []string
}

// New makes an empty lab whose namespaces are named prefix + 6 random hex
// digits + "-" + name; t's cleanup tears it down. prefix should be short:
// interface and namespace names are limited in length.
func New(t testing.TB, prefix string) *Lab {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("netnslab: random prefix: %v", err)
	}
	l := &Lab{t: t, prefix: prefix + hex.EncodeToString(b[:]), dir: t.TempDir()}
	t.Cleanup(l.cleanup)
	return l
}

// Dir is the lab's temporary directory, where process logs go.
func (l *Lab) Dir() string { return l.dir }

func (l *Lab) cleanup() {
	l.mu.Lock()
	procs, nss := l.procs, l.nss
	l.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	for _, ns := range nss {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	all := os.Getenv("TUNNELMESH_E2E_LOGS") != ""
	if l.t.Failed() || all {
		for _, p := range procs {
			b, _ := os.ReadFile(p.Log)
			if len(b) > logTail && !all {
				b = b[len(b)-logTail:]
			}
			l.t.Logf("---- log of %s (tail) ----\n%s", p.Name, b)
		}
	}
}

// NS returns the full name of the lab's namespace name.
func (l *Lab) NS(name string) string { return l.prefix + "-" + name }

// AddNS creates namespace name with lo up and returns its full name.
func (l *Lab) AddNS(name string) string {
	l.t.Helper()
	ns := l.NS(name)
	l.Must("ip", "netns", "add", ns)
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	l.Must("ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// Link joins ns to the bridge br in namespace brNS with a veth pair: peer
// on the bridge side, ifname with address addr (CIDR) in ns.
func (l *Lab) Link(brNS, br, peer, ns, ifname, addr string) {
	l.t.Helper()
	l.Must("ip", "-n", brNS, "link", "add", peer, "type", "veth", "peer", "name", ifname, "netns", ns)
	l.Must("ip", "-n", brNS, "link", "set", peer, "master", br, "up")
	l.Must("ip", "-n", ns, "addr", "add", addr, "dev", ifname)
	l.Must("ip", "-n", ns, "link", "set", ifname, "up")
}

// Must runs a command (not in a namespace) and fails the test if it fails.
func (l *Lab) Must(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Run runs a command in namespace ns and returns its stdout; the error
// carries its stderr.
func (l *Lab) Run(ns string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Proc is a long-running process the lab started; the lab's cleanup kills it.
type Proc struct {
	Name string
	Log  string // path of the file with its stdout and stderr

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts a long-running command in ns, appending its output to
// Dir()/name.log.
func (l *Lab) Start(ns, name string, args ...string) *Proc {
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
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
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

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error; valid once Done is closed.
func (p *Proc) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits. ip netns exec execs the command, so the
// process is the command itself.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and waits up to 10 s; it returns the exit error, and
// fails t (then kills) if the process does not exit in time.
func (p *Proc) Stop(t testing.TB) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit within 10 s of SIGTERM", p.Name)
		p.Kill()
		return p.err
	}
}

// allowAllPolicy is the policy CoordinatorConfig gives the mesh, so that
// tests of the data plane are not tests of the policy.
const allowAllPolicy = "rules:\n  - {name: all, from: \"*\", to: \"*\", proto: any}\n"

// CoordinatorConfig writes Dir()/name.yaml, the config of a coordinator
// listening on listen (HTTPS) and stun (UDP) with mesh cidr, data in
// Dir()/name, debug logs and a policy allowing all traffic; extra is
// appended as further YAML lines. It returns the config's path.
func (l *Lab) CoordinatorConfig(name, listen, stun, cidr, extra string) string {
	l.t.Helper()
	policyPath := filepath.Join(l.dir, "allow-all.yaml")
	if err := os.WriteFile(policyPath, []byte(allowAllPolicy), 0o600); err != nil {
		l.t.Fatal(err)
	}
	cfgPath := filepath.Join(l.dir, name+".yaml")
	cfg := fmt.Sprintf("listen: %s\ndata_dir: %s\nmesh_cidr: %s\nstun_listen: %s\nlog_level: debug\npolicy_file: %s\n",
		listen, filepath.Join(l.dir, name), cidr, stun, policyPath) + extra
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return cfgPath
}

// JoinToken creates a reusable join token with the tunnelmesh binary bin
// against the coordinator config cfgPath, run in ns with extra flags (e.g.
// --tag), retrying for up to 20 s while the coordinator starts.
func (l *Lab) JoinToken(ns, bin, cfgPath string, extra ...string) string {
	l.t.Helper()
	args := append([]string{bin, "admin", "--config", cfgPath, "tokens", "create", "--reusable"}, extra...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := l.Run(ns, 10*time.Second, args...)
		if err == nil {
			return strings.TrimSpace(out)
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("create token: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Status returns the status of the node with state directory stateDir in
// ns, read with bin status --json.
func (l *Lab) Status(ns, bin, stateDir string) (localapi.Status, error) {
	out, err := l.Run(ns, 10*time.Second, bin, "status", "--json", "--state-dir", stateDir)
	if err != nil {
		return localapi.Status{}, err
	}
	var s localapi.Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return s, fmt.Errorf("status json: %v: %q", err, out)
	}
	return s, nil
}
