package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/netnslab"
)

// lab is a netnslab.Lab of namespaces joined by a bridge, each host with
// one veth ("eth0") on the underlay 10.99.0.0/24.
type lab struct {
	*netnslab.Lab
	t    *testing.T
	bin  string // tunnelmesh
	tool string // meshtool
}

func newLab(t *testing.T) *lab {
	netnslab.NeedRoot(t, "creates network namespaces, veth pairs and TUN devices", "ip")
	l := &lab{
		Lab:  netnslab.New(t, "tme2e"),
		t:    t,
		bin:  netnslab.Build(t, "github.com/tunnelmesh/tunnelmesh/agent/cmd/tunnelmesh"),
		tool: netnslab.Build(t, "github.com/tunnelmesh/tunnelmesh/agent/internal/e2e/meshtool"),
	}
	br := l.AddNS("br")
	l.Must("ip", "-n", br, "link", "add", "br0", "type", "bridge")
	l.Must("ip", "-n", br, "link", "set", "br0", "up")
	return l
}

// addHost makes a namespace with eth0 on the bridge at 10.99.0.<octet>.
func (l *lab) addHost(name string, octet int) string {
	l.t.Helper()
	ns := l.AddNS(name)
	l.Link(l.NS("br"), "br0", "v"+name, ns, "eth0", fmt.Sprintf("10.99.0.%d/24", octet))
	return ns
}

// coordinator writes a config and starts a coordinator in ns. The mesh
// starts with a policy that allows everything, so that the tests of the
// data plane are not tests of the policy.
func (l *lab) coordinator(ns, name, listen, stun, cidr string) (cfgPath string) {
	l.t.Helper()
	cfgPath = l.CoordinatorConfig(name, listen, stun, cidr, "")
	l.Start(ns, name, l.bin, "coordinator", "--config", cfgPath)
	return cfgPath
}

// token creates a reusable join token, retrying while the coordinator starts.
func (l *lab) token(ns, cfgPath string) string {
	l.t.Helper()
	return l.JoinToken(ns, l.bin, cfgPath)
}

// node is a tunnelmesh node run by the lab.
type node struct {
	name     string
	ns       string
	stateDir string
	iface    string
	p        *netnslab.Proc
}

func (l *lab) join(ns, name, stateName, iface, coordURL, token string, extra ...string) *node {
	l.t.Helper()
	n := &node{name: name, ns: ns, stateDir: filepath.Join(l.Dir(), stateName), iface: iface}
	args := []string{l.bin, "join", "--coordinator", coordURL, "--token", token, "--name", name,
		"--state-dir", n.stateDir, "--log-level", "debug"}
	if iface != "" {
		args = append(args, "--interface", iface)
	}
	args = append(args, extra...)
	n.p = l.Start(ns, stateName, args...)
	return n
}

func (l *lab) up(n *node) {
	n.p = l.Start(n.ns, filepath.Base(n.stateDir), l.bin, "up", "--state-dir", n.stateDir, "--log-level", "debug")
}

func (l *lab) status(n *node) (localapi.Status, error) {
	return l.Status(n.ns, l.bin, n.stateDir)
}

// waitStatus polls n's status until ok accepts it.
func (l *lab) waitStatus(n *node, timeout time.Duration, what string, ok func(localapi.Status) bool) localapi.Status {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var last localapi.Status
	var lastErr error
	for time.Now().Before(deadline) {
		if n.p.Exited() {
			l.t.Fatalf("node %s exited: %v", n.name, n.p.Err())
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
		if out, err = l.Run(ns, 10*time.Second, l.tool, "ping", ip, "2"); err == nil {
			if el := time.Since(start); el > 2*time.Second {
				l.t.Logf("ping %s from %s answered after %v: %s", ip, ns, el, out)
			}
			return nil
		}
	}
	return err
}

// threeNodes is a coordinator (named coordName, mesh 100.64.0.0/16) and
// nodes n1, n2, n3 each in its own namespace, joined and seeing each other.
type threeNodes struct {
	cns    string                     // coordinator namespace
	cfg    string                     // coordinator config path
	hosts  []string                   // n1, n2, n3
	nss    map[string]string          // host -> namespace
	nodes  map[string]*node           // host -> running node
	status map[string]localapi.Status // host -> status once it saw both peers
	ips    map[string]string          // host -> mesh IP
}

func (l *lab) threeNodes(coordName string) threeNodes {
	m := threeNodes{
		cns: l.addHost("c", 1), hosts: []string{"n1", "n2", "n3"},
		nss: map[string]string{}, nodes: map[string]*node{},
		status: map[string]localapi.Status{}, ips: map[string]string{},
	}
	for i, h := range m.hosts {
		m.nss[h] = l.addHost(h, 11+i)
	}
	m.cfg = l.coordinator(m.cns, coordName, coordIP+":8443", coordIP+":3478", "100.64.0.0/16")
	tok := l.token(m.cns, m.cfg)
	for _, h := range m.hosts {
		m.nodes[h] = l.join(m.nss[h], h, h, "", coordURL, tok)
	}
	for _, h := range m.hosts {
		s := l.waitStatus(m.nodes[h], 20*time.Second, "two peers", func(s localapi.Status) bool { return len(s.Peers) == 2 })
		m.status[h] = s
		m.ips[h] = s.IP.String()
	}
	return m
}
