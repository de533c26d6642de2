package natlab

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
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
)

// The lab's "internet": a bridge in namespace inet, 198.51.100.0/24, the
// coordinator at .1 (HTTPS and relay on 443, STUN on 3478).
const (
	inetPrefix = "198.51.100."
	coordIP    = inetPrefix + "1"
	coordURL   = "https://" + coordIP + ":443"
)

type lab struct {
	t      testing.TB
	prefix string
	dir    string
	bin    string
	tool   string
	inet   string
	links  int

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

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veth pairs, iptables NAT and TUN devices")
	}
	for _, c := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("needs %s: %v", c, err)
		}
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func build(t testing.TB) (bin, tool string) {
	bin, tool, _ = buildAll(t)
	return bin, tool
}

// buildAll also returns the standalone tunnelmesh-sshgw.
func buildAll(t testing.TB) (bin, tool, sshgw string) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "tunnelmesh-natlab-bin-")
		if buildErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{
			{"tunnelmesh", "github.com/tunnelmesh/tunnelmesh/agent/cmd/tunnelmesh"},
			{"meshtool", "github.com/tunnelmesh/tunnelmesh/agent/internal/e2e/meshtool"},
			{"tunnelmesh-sshgw", "github.com/tunnelmesh/tunnelmesh/sshgw/cmd/tunnelmesh-sshgw"},
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
	return filepath.Join(buildDir, "tunnelmesh"), filepath.Join(buildDir, "meshtool"), filepath.Join(buildDir, "tunnelmesh-sshgw")
}

// newLab makes the internet namespace with the coordinator on it.
func newLab(t testing.TB) *lab {
	needRoot(t)
	bin, tool := build(t)
	var b [3]byte
	rand.Read(b[:])
	l := &lab{t: t, prefix: "tmnat" + hex.EncodeToString(b[:]), dir: t.TempDir(), bin: bin, tool: tool}
	t.Cleanup(l.cleanup)
	l.inet = l.addNS("inet")
	l.must("ip", "-n", l.inet, "link", "add", "br0", "type", "bridge")
	l.must("ip", "-n", l.inet, "addr", "add", coordIP+"/24", "dev", "br0")
	l.must("ip", "-n", l.inet, "link", "set", "br0", "up")
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
	if l.t.Failed() || os.Getenv("TUNNELMESH_E2E_LOGS") != "" {
		for _, p := range procs {
			b, _ := os.ReadFile(p.log)
			if len(b) > 8000 && os.Getenv("TUNNELMESH_E2E_LOGS") == "" {
				b = b[len(b)-8000:]
			}
			l.t.Logf("---- log of %s (tail) ----\n%s", p.name, b)
		}
	}
}

func (l *lab) addNS(name string) string {
	ns := l.prefix + "-" + name
	l.must("ip", "netns", "add", ns)
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	l.must("ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// link joins ns to the bridge br in namespace brNS with interface ifname
// and address addr (CIDR).
func (l *lab) link(brNS, br, ns, ifname, addr string) {
	l.links++
	peer := fmt.Sprintf("v%d", l.links)
	l.must("ip", "-n", brNS, "link", "add", peer, "type", "veth", "peer", "name", ifname, "netns", ns)
	l.must("ip", "-n", brNS, "link", "set", peer, "master", br, "up")
	l.must("ip", "-n", ns, "addr", "add", addr, "dev", ifname)
	l.must("ip", "-n", ns, "link", "set", ifname, "up")
}

// public makes a host directly on the internet at 198.51.100.<octet>.
func (l *lab) public(name string, octet int) (ns, ip string) {
	ns = l.addNS(name)
	ip = fmt.Sprintf("%s%d", inetPrefix, octet)
	l.link(l.inet, "br0", ns, "eth0", ip+"/24")
	return ns, ip
}

// NAT kinds.
const (
	natEIM       = "eim"       // MASQUERADE: ports kept, one mapping per source
	natSymmetric = "symmetric" // MASQUERADE --random-fully: a new port per destination
)

// router makes a NAT router with its WAN at 198.51.100.<octet> and a LAN
// bridge 10.<lan>.0.0/24 (itself .1).
type router struct {
	ns, wanIP string
	lan       int
}

func (l *lab) router(name string, octet, lan int, kind string) *router {
	ns := l.addNS(name)
	r := &router{ns: ns, wanIP: fmt.Sprintf("%s%d", inetPrefix, octet), lan: lan}
	l.link(l.inet, "br0", ns, "wan", r.wanIP+"/24")
	l.must("ip", "-n", ns, "link", "add", "lan", "type", "bridge")
	l.must("ip", "-n", ns, "addr", "add", fmt.Sprintf("10.%d.0.1/24", lan), "dev", "lan")
	l.must("ip", "-n", ns, "link", "set", "lan", "up")
	l.must("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	args := []string{"ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if kind == natSymmetric {
		args = append(args, "--random-fully")
	}
	l.must(args...)
	// Like a home router, drop unsolicited traffic to the router itself.
	// (Without this, Linux conntrack records a peer's first hole-punching
	// probe, which the router answers with port unreachable, and
	// MASQUERADE then gives the outgoing probe of the node behind it
	// another port: no hole ever opens.)
	l.must("ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-i", "wan", "-j", "DROP")
	return r
}

// behind makes a host on r's LAN at 10.<lan>.0.<octet>.
func (l *lab) behind(r *router, name string, octet int) (ns, ip string) {
	ns = l.addNS(name)
	ip = fmt.Sprintf("10.%d.0.%d", r.lan, octet)
	l.link(r.ns, "lan", ns, "eth0", ip+"/24")
	l.must("ip", "-n", ns, "route", "add", "default", "via", fmt.Sprintf("10.%d.0.1", r.lan))
	return ns, ip
}

func (l *lab) must(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

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

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

const allowAllPolicy = "rules:\n  - {name: all, from: \"*\", to: \"*\", proto: any}\n"

// coordinator starts the coordinator in the internet namespace and
// returns a reusable join token.
func (l *lab) coordinator() string {
	l.t.Helper()
	return l.coordinatorWith("")
}

// coordinatorWith is coordinator with extra lines of coordinator config
// (YAML), e.g. "relay:\n  disabled: true\n".
func (l *lab) coordinatorWith(extra string) string {
	l.t.Helper()
	dataDir := filepath.Join(l.dir, "coord")
	cfgPath := filepath.Join(l.dir, "coord.yaml")
	policyPath := filepath.Join(l.dir, "allow-all.yaml")
	if err := os.WriteFile(policyPath, []byte(allowAllPolicy), 0o600); err != nil {
		l.t.Fatal(err)
	}
	cfg := fmt.Sprintf("listen: %s:443\ndata_dir: %s\nmesh_cidr: 100.64.0.0/16\nstun_listen: %s:3478\nlog_level: debug\npolicy_file: %s\n",
		coordIP, dataDir, coordIP, policyPath) + extra
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		l.t.Fatal(err)
	}
	l.start(l.inet, "coord", l.bin, "coordinator", "--config", cfgPath)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := l.run(l.inet, 10*time.Second, l.bin, "admin", "--config", cfgPath, "tokens", "create", "--reusable")
		if err == nil {
			return strings.TrimSpace(out)
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("create token: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type node struct {
	name, ns, stateDir string
	ip                 string // mesh IP, once up
	p                  *proc
}

func (l *lab) join(ns, name, token string, extra ...string) *node {
	l.t.Helper()
	n := &node{name: name, ns: ns, stateDir: filepath.Join(l.dir, name)}
	args := append([]string{l.bin, "join", "--coordinator", coordURL, "--token", token, "--name", name,
		"--state-dir", n.stateDir, "--log-level", "debug"}, extra...)
	n.p = l.start(ns, name, args...)
	return n
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

// waitPeer waits until n sees one peer, and records n's mesh IP.
func (l *lab) waitPeer(n *node, timeout time.Duration) localapi.Status {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var last localapi.Status
	var err error
	for time.Now().Before(deadline) {
		if n.p.exited() {
			l.t.Fatalf("node %s exited: %v", n.name, n.p.err)
		}
		if last, err = l.status(n); err == nil && len(last.Peers) == 1 {
			n.ip = last.IP.String()
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("node %s: no peer within %v; last status %+v, err %v", n.name, timeout, last, err)
	return last
}

// path returns the path n reports for its peer.
func (l *lab) path(n *node) string {
	s, err := l.status(n)
	if err != nil || len(s.Peers) != 1 {
		return ""
	}
	return s.Peers[0].Path
}

// pingOnce sends one echo through the tunnel and reports whether it came back.
func (l *lab) pingOnce(ns, ip string) bool {
	_, err := l.run(ns, 5*time.Second, l.tool, "ping", ip, "1")
	return err == nil
}

// transfer moves size bytes over TCP through the tunnel from a to b and
// checks they arrive intact; it returns meshtool's summary.
func (l *lab) transfer(a, b *node, size int, timeout time.Duration) string {
	l.t.Helper()
	port := 5001 + l.links
	recv := l.start(b.ns, fmt.Sprintf("recv-%d", port), l.tool, "recv", fmt.Sprintf("%s:%d", b.ip, port))
	out, err := l.run(a.ns, timeout, l.tool, "send", fmt.Sprintf("%s:%d", b.ip, port), fmt.Sprint(size), "7")
	if err != nil {
		l.t.Fatalf("send %s -> %s: %v", a.name, b.name, err)
	}
	select {
	case <-recv.done:
	case <-time.After(30 * time.Second):
		l.t.Fatal("receiver did not finish")
	}
	logb, _ := os.ReadFile(recv.log)
	sent := strings.Fields(out)
	var rcvd []string
	for _, line := range strings.Split(string(logb), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "recv" {
			rcvd = f
		}
	}
	if len(sent) < 4 || len(rcvd) < 3 || sent[1] != fmt.Sprint(size) || rcvd[1] != sent[1] || rcvd[2] != sent[2] {
		l.t.Fatalf("sent %q, received %q; want %d bytes with equal sha256", out, logb, size)
	}
	return strings.TrimSpace(out)
}
