// Package e2e runs real tunnelmesh binaries in network namespaces (root
// only): a coordinator and three nodes, each in its own namespace on a
// bridged underlay, with real TUN devices.
package e2e

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
)

const (
	coordIP  = "10.99.0.1"
	coordURL = "https://" + coordIP + ":8443"
)

func TestMesh(t *testing.T) {
	l := newLab(t)
	m := l.threeNodes("coord-a")
	cns, cfg, hosts, nss, nodes, ips := m.cns, m.cfg, m.hosts, m.nss, m.nodes, m.ips
	for _, h := range hosts {
		s := m.status[h]
		if s.Interface != "tunnelmesh0" || s.MTU != 1420 || !s.Coordinator.Reachable {
			t.Errorf("%s status: interface %q mtu %d coordinator %+v; want tunnelmesh0, 1420, reachable", h, s.Interface, s.MTU, s.Coordinator)
		}
		// Only the mesh prefix is routed into the interface.
		routes := l.Must("ip", "-n", nss[h], "-4", "route", "show", "dev", "tunnelmesh0")
		if got := strings.Fields(routes); len(got) == 0 || got[0] != "100.64.0.0/16" || strings.Count(routes, "\n") != 1 {
			t.Errorf("%s routes via tunnelmesh0 = %q, want only 100.64.0.0/16", h, routes)
		}
	}
	t.Logf("mesh up: %v", ips)

	t.Run("every pair pings", func(t *testing.T) {
		for _, a := range hosts {
			for _, b := range hosts {
				if a == b {
					continue
				}
				if err := l.ping(nss[a], ips[b], 10*time.Second); err != nil {
					t.Errorf("ping %s -> %s (%s): %v", a, b, ips[b], err)
				}
			}
		}
		// A peer is reachable from the first packet (through the relay if
		// need be) and the path upgrades to direct UDP when that works,
		// as it does on this bridge.
		start := time.Now()
		l.waitStatus(nodes["n1"], 20*time.Second, "direct paths to every peer", func(s localapi.Status) bool {
			for _, p := range s.Peers {
				if !strings.HasPrefix(p.Path, "udp ") {
					return false
				}
			}
			return len(s.Peers) == 2
		})
		t.Logf("n1 has direct paths to every peer %v after the pings", time.Since(start))
		out, err := l.Run(nss["n1"], 20*time.Second, l.bin, "ping", "--state-dir", nodes["n1"].stateDir, "n2")
		if err != nil || !strings.Contains(out, "pong from n2 ("+ips["n2"]+") via udp ") {
			t.Errorf("tunnelmesh ping n2 = %q, %v; want a pong via a direct path", out, err)
		}
		s, err := l.status(nodes["n1"])
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range s.Peers {
			if p.LastHandshake.IsZero() || p.RxBytes == 0 || p.TxBytes == 0 || !strings.HasPrefix(p.Path, "udp ") {
				t.Errorf("n1 status of %s after pings: %+v; want a handshake, bytes both ways, a direct path", p.Name, p)
			}
		}
		text, err := l.Run(nss["n1"], 10*time.Second, l.bin, "status", "--state-dir", nodes["n1"].stateDir)
		if err != nil || !strings.Contains(text, "n2") || !strings.Contains(text, "reachable") {
			t.Errorf("tunnelmesh status = %q, %v", text, err)
		}
		t.Logf("tunnelmesh status on n1:\n%s", text)
	})

	t.Run("100 MB TCP transfer arrives intact", func(t *testing.T) {
		const size = 100 << 20
		recv := l.Start(nss["n2"], "recv", l.tool, "recv", ips["n2"]+":5001")
		out, err := l.Run(nss["n1"], 3*time.Minute, l.tool, "send", ips["n2"]+":5001", fmt.Sprint(size), "42")
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		select {
		case <-recv.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("receiver did not finish")
		}
		got := readLog(t, recv.Log)
		sent := strings.Fields(out)
		rcvd := fieldsOfLine(got, "recv")
		if len(sent) < 3 || len(rcvd) < 3 || sent[1] != fmt.Sprint(size) || rcvd[1] != sent[1] || rcvd[2] != sent[2] {
			t.Fatalf("sent %q, received %q; want %d bytes with equal sha256", out, got, size)
		}
		t.Logf("100 MB: %s", strings.TrimSpace(out))
	})

	t.Run("killed node comes back", func(t *testing.T) {
		n3 := nodes["n3"]
		n3.p.Kill()
		if _, err := l.Run(nss["n3"], 5*time.Second, "ip", "link", "show", "tunnelmesh0"); err == nil {
			t.Errorf("tunnelmesh0 still exists in n3 after the node was killed")
		}
		if err := l.ping(nss["n1"], ips["n3"], 2*time.Second); err == nil {
			t.Errorf("n1 still reaches n3 while its node is dead")
		}
		l.up(n3)
		l.waitStatus(n3, 20*time.Second, "two peers after restart", func(s localapi.Status) bool { return len(s.Peers) == 2 })
		for _, src := range []string{"n1", "n2"} {
			if err := l.ping(nss[src], ips["n3"], 15*time.Second); err != nil {
				t.Errorf("ping %s -> restarted n3: %v", src, err)
			}
		}
		if err := l.ping(nss["n3"], ips["n1"], 10*time.Second); err != nil {
			t.Errorf("ping restarted n3 -> n1: %v", err)
		}
	})

	t.Run("second mesh side by side", func(t *testing.T) {
		cfgB := l.coordinator(cns, "coord-b", coordIP+":8444", coordIP+":3479", "100.65.0.0/16")
		tokB := l.token(cns, cfgB)
		b1 := l.join(nss["n1"], "b1", "n1-b", "tmb0", "https://"+coordIP+":8444", tokB)
		// b2 runs with every offload off, so the slow paths carry traffic too.
		b2 := l.join(nss["n2"], "b2", "n2-b", "tmb0", "https://"+coordIP+":8444", tokB,
			"--tun-offload=false", "--udp-offload=false", "--udp-send-batching=false", "--mtu", "1380")
		s1 := l.waitStatus(b1, 20*time.Second, "mesh B peer", func(s localapi.Status) bool { return len(s.Peers) == 1 })
		s2 := l.waitStatus(b2, 20*time.Second, "mesh B peer", func(s localapi.Status) bool { return len(s.Peers) == 1 })
		if s1.MeshID == "" || s1.MeshID == mustStatus(t, l, nodes["n1"]).MeshID {
			t.Errorf("mesh B has mesh id %q, same as mesh A", s1.MeshID)
		}
		if err := l.ping(nss["n1"], s2.IP.String(), 10*time.Second); err != nil {
			t.Errorf("mesh B ping b1 -> b2: %v", err)
		}
		if err := l.ping(nss["n2"], s1.IP.String(), 10*time.Second); err != nil {
			t.Errorf("mesh B ping b2 -> b1: %v", err)
		}
		if s2.MTU != 1380 || s2.Interface != "tmb0" {
			t.Errorf("b2 runs with interface %q mtu %d, want tmb0 1380", s2.Interface, s2.MTU)
		}
		// 20 MB over mesh B, into the node without offloads.
		recv := l.Start(nss["n2"], "recv-b", l.tool, "recv", s2.IP.String()+":5002")
		out, err := l.Run(nss["n1"], 2*time.Minute, l.tool, "send", s2.IP.String()+":5002", fmt.Sprint(20<<20), "7")
		if err != nil {
			t.Fatalf("send over mesh B: %v", err)
		}
		<-recv.Done()
		sent, rcvd := strings.Fields(out), fieldsOfLine(readLog(t, recv.Log), "recv")
		if len(sent) < 3 || len(rcvd) < 3 || rcvd[1] != sent[1] || rcvd[2] != sent[2] {
			t.Errorf("mesh B transfer: sent %q, received %q", out, rcvd)
		}
		if err := l.ping(nss["n1"], ips["n2"], 10*time.Second); err != nil {
			t.Errorf("mesh A ping n1 -> n2 with mesh B beside it: %v", err)
		}
		// A clean stop removes the interface and leaves mesh A alone.
		if err := b1.p.Stop(t); err != nil {
			t.Errorf("b1 exit after SIGTERM: %v, want status 0", err)
		}
		if _, err := l.Run(nss["n1"], 5*time.Second, "ip", "link", "show", "tmb0"); err == nil {
			t.Errorf("tmb0 still exists after SIGTERM")
		}
		if err := l.ping(nss["n1"], ips["n2"], 10*time.Second); err != nil {
			t.Errorf("mesh A ping n1 -> n2 after mesh B node stopped: %v", err)
		}
	})

	t.Run("node removed by admin loses its tunnels", func(t *testing.T) {
		if err := l.ping(nss["n1"], ips["n3"], 10*time.Second); err != nil {
			t.Fatalf("n1 -> n3 before removal: %v", err)
		}
		if _, err := l.Run(cns, 10*time.Second, l.bin, "admin", "--config", cfg, "nodes", "remove", "n3"); err != nil {
			t.Fatalf("admin nodes remove n3: %v", err)
		}
		start := time.Now()
		gone := func(s localapi.Status) bool { return !slices.Contains(peerNames(s), "n3") }
		l.waitStatus(nodes["n1"], 2*time.Second, "n3 removed", gone)
		l.waitStatus(nodes["n2"], 2*time.Second, "n3 removed", gone)
		l.waitStatus(nodes["n3"], 2*time.Second, "n3 has no peers", func(s localapi.Status) bool { return len(s.Peers) == 0 })
		t.Logf("n3's tunnels torn down on every node %v after the admin removed it", time.Since(start))
		for _, src := range []string{"n1", "n2"} {
			if _, err := l.Run(nss[src], 5*time.Second, l.tool, "ping", ips["n3"], "1"); err == nil {
				t.Errorf("%s still reaches removed n3", src)
			}
		}
		if _, err := l.Run(nss["n3"], 5*time.Second, l.tool, "ping", ips["n1"], "1"); err == nil {
			t.Errorf("removed n3 still reaches n1")
		}
		if err := l.ping(nss["n1"], ips["n2"], 10*time.Second); err != nil {
			t.Errorf("n1 -> n2 after n3's removal: %v", err)
		}
	})

	t.Run("clean stop on SIGTERM", func(t *testing.T) {
		for _, h := range hosts {
			if err := nodes[h].p.Stop(t); err != nil {
				t.Errorf("%s exit after SIGTERM: %v", h, err)
			}
			if _, err := l.Run(nss[h], 5*time.Second, "ip", "link", "show", "tunnelmesh0"); err == nil {
				t.Errorf("%s: tunnelmesh0 still exists after SIGTERM", h)
			}
		}
	})
}

func mustStatus(t *testing.T, l *lab, n *node) localapi.Status {
	t.Helper()
	s, err := l.status(n)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("cat", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func fieldsOfLine(text, first string) []string {
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			return f
		}
	}
	return nil
}
