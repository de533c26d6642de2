package natlab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/netnslab"
)

// The lab's "internet": a bridge in namespace inet, 198.51.100.0/24, the
// coordinator at .1 (HTTPS and relay on 443, STUN on 3478).
const (
	inetPrefix = "198.51.100."
	coordIP    = inetPrefix + "1"
	coordURL   = "https://" + coordIP + ":443"
)

// lab is a netnslab.Lab with an "internet" bridge, the coordinator on it,
// public hosts and NAT routers with hosts behind them.
type lab struct {
	*netnslab.Lab
	t     testing.TB
	bin   string // tunnelmesh
	tool  string // meshtool
	inet  string
	links int
}

func needRoot(t testing.TB) {
	t.Helper()
	netnslab.NeedRoot(t, "creates network namespaces, veth pairs, iptables NAT and TUN devices", "ip", "iptables")
}

// newLab makes the internet namespace with the coordinator's address on it.
func newLab(t testing.TB) *lab {
	needRoot(t)
	l := &lab{
		Lab:  netnslab.New(t, "tmnat"),
		t:    t,
		bin:  netnslab.Build(t, "github.com/tunnelmesh/tunnelmesh/agent/cmd/tunnelmesh"),
		tool: netnslab.Build(t, "github.com/tunnelmesh/tunnelmesh/agent/internal/e2e/meshtool"),
	}
	l.inet = l.AddNS("inet")
	l.Must("ip", "-n", l.inet, "link", "add", "br0", "type", "bridge")
	l.Must("ip", "-n", l.inet, "addr", "add", coordIP+"/24", "dev", "br0")
	l.Must("ip", "-n", l.inet, "link", "set", "br0", "up")
	return l
}

// link joins ns to the bridge br in namespace brNS with interface ifname
// and address addr (CIDR).
func (l *lab) link(brNS, br, ns, ifname, addr string) {
	l.t.Helper()
	l.links++
	l.Link(brNS, br, fmt.Sprintf("v%d", l.links), ns, ifname, addr)
}

// public makes a host directly on the internet at 198.51.100.<octet>.
func (l *lab) public(name string, octet int) (ns, ip string) {
	ns = l.AddNS(name)
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
	ns := l.AddNS(name)
	r := &router{ns: ns, wanIP: fmt.Sprintf("%s%d", inetPrefix, octet), lan: lan}
	l.link(l.inet, "br0", ns, "wan", r.wanIP+"/24")
	l.Must("ip", "-n", ns, "link", "add", "lan", "type", "bridge")
	l.Must("ip", "-n", ns, "addr", "add", fmt.Sprintf("10.%d.0.1/24", lan), "dev", "lan")
	l.Must("ip", "-n", ns, "link", "set", "lan", "up")
	l.Must("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	args := []string{"ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if kind == natSymmetric {
		args = append(args, "--random-fully")
	}
	l.Must(args...)
	// Like a home router, drop unsolicited traffic to the router itself.
	// (Without this, Linux conntrack records a peer's first hole-punching
	// probe, which the router answers with port unreachable, and
	// MASQUERADE then gives the outgoing probe of the node behind it
	// another port: no hole ever opens.)
	l.Must("ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-i", "wan", "-j", "DROP")
	return r
}

// behind makes a host on r's LAN at 10.<lan>.0.<octet>.
func (l *lab) behind(r *router, name string, octet int) (ns, ip string) {
	ns = l.AddNS(name)
	ip = fmt.Sprintf("10.%d.0.%d", r.lan, octet)
	l.link(r.ns, "lan", ns, "eth0", ip+"/24")
	l.Must("ip", "-n", ns, "route", "add", "default", "via", fmt.Sprintf("10.%d.0.1", r.lan))
	return ns, ip
}

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
	cfgPath := l.CoordinatorConfig("coord", coordIP+":443", coordIP+":3478", "100.64.0.0/16", extra)
	l.Start(l.inet, "coord", l.bin, "coordinator", "--config", cfgPath)
	return l.JoinToken(l.inet, l.bin, cfgPath)
}

type node struct {
	name, ns, stateDir string
	ip                 string // mesh IP, once up
	p                  *netnslab.Proc
}

func (l *lab) join(ns, name, token string, extra ...string) *node {
	l.t.Helper()
	n := &node{name: name, ns: ns, stateDir: filepath.Join(l.Dir(), name)}
	args := append([]string{l.bin, "join", "--coordinator", coordURL, "--token", token, "--name", name,
		"--state-dir", n.stateDir, "--log-level", "debug"}, extra...)
	n.p = l.Start(ns, name, args...)
	return n
}

func (l *lab) status(n *node) (localapi.Status, error) {
	return l.Status(n.ns, l.bin, n.stateDir)
}

// waitPeer waits until n sees one peer, and records n's mesh IP.
func (l *lab) waitPeer(n *node, timeout time.Duration) localapi.Status {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var last localapi.Status
	var err error
	for time.Now().Before(deadline) {
		if n.p.Exited() {
			l.t.Fatalf("node %s exited: %v", n.name, n.p.Err())
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
	_, err := l.Run(ns, 5*time.Second, l.tool, "ping", ip, "1")
	return err == nil
}

// transfer moves size bytes over TCP through the tunnel from a to b and
// checks they arrive intact; it returns meshtool's summary.
func (l *lab) transfer(a, b *node, size int, timeout time.Duration) string {
	l.t.Helper()
	port := 5001 + l.links
	recv := l.Start(b.ns, fmt.Sprintf("recv-%d", port), l.tool, "recv", fmt.Sprintf("%s:%d", b.ip, port))
	out, err := l.Run(a.ns, timeout, l.tool, "send", fmt.Sprintf("%s:%d", b.ip, port), fmt.Sprint(size), "7")
	if err != nil {
		l.t.Fatalf("send %s -> %s: %v", a.name, b.name, err)
	}
	select {
	case <-recv.Done():
	case <-time.After(30 * time.Second):
		l.t.Fatal("receiver did not finish")
	}
	logb, _ := os.ReadFile(recv.Log)
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
