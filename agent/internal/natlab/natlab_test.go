package natlab

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// connect checks one case: both nodes see each other, a ping gets through,
// both settle on a path starting with wantA/wantB, and a TCP transfer
// arrives intact. It logs how long each step took.
func (l *lab) connect(t *testing.T, a, b *node, wantA, wantB string) {
	t.Helper()
	l.waitPeer(a, 30*time.Second)
	l.waitPeer(b, 30*time.Second)
	t0 := time.Now()
	for !l.pingOnce(a.ns, b.ip) {
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("no ping %s -> %s within 30s; paths %q / %q", a.name, b.name, l.path(a), l.path(b))
		}
	}
	firstPing := time.Since(t0)
	var pa, pb string
	for {
		pa, pb = l.path(a), l.path(b)
		if strings.HasPrefix(pa, wantA) && strings.HasPrefix(pb, wantB) {
			break
		}
		if time.Since(t0) > 40*time.Second {
			t.Fatalf("paths %q / %q after 40s, want %q / %q", pa, pb, wantA, wantB)
		}
		l.pingOnce(a.ns, b.ip)
		time.Sleep(100 * time.Millisecond)
	}
	settled := time.Since(t0)
	if !l.pingOnce(b.ns, a.ip) {
		t.Errorf("ping %s -> %s failed on the settled path", b.name, a.name)
	}
	out := l.transfer(a, b, 20<<20, 2*time.Minute)
	t.Logf("first ping after %v; settled on %q (%s) / %q (%s) after %v; 20 MB TCP: %s",
		firstPing.Round(time.Millisecond), pa, a.name, pb, b.name, settled.Round(time.Millisecond), out)
	if pa2 := l.path(a); !strings.HasPrefix(pa2, wantA) {
		t.Errorf("after the transfer %s is on %q, want %q", a.name, pa2, wantA)
	}
}

func TestNATLab(t *testing.T) {
	needRoot(t)
	t.Run("1 same LAN", func(t *testing.T) {
		l := newLab(t)
		tok := l.coordinator()
		r := l.router("r1", 11, 1, natEIM)
		nsA, _ := l.behind(r, "a", 2)
		nsB, _ := l.behind(r, "b", 3)
		a, b := l.join(nsA, "a", tok), l.join(nsB, "b", tok)
		l.connect(t, a, b, "udp 10.1.0.3:", "udp 10.1.0.2:")
	})
	t.Run("2 both behind ordinary NAT", func(t *testing.T) {
		l := newLab(t)
		tok := l.coordinator()
		ra, rb := l.router("ra", 11, 1, natEIM), l.router("rb", 12, 2, natEIM)
		nsA, _ := l.behind(ra, "a", 2)
		nsB, _ := l.behind(rb, "b", 2)
		a, b := l.join(nsA, "a", tok), l.join(nsB, "b", tok)
		l.connect(t, a, b, "udp "+rb.wanIP+":", "udp "+ra.wanIP+":")
	})
	t.Run("3 symmetric NAT to a reachable node", func(t *testing.T) {
		l := newLab(t)
		tok := l.coordinator()
		ra := l.router("ra", 11, 1, natSymmetric)
		nsA, _ := l.behind(ra, "a", 2)
		nsB, ipB := l.public("b", 30)
		a, b := l.join(nsA, "a", tok), l.join(nsB, "b", tok)
		l.connect(t, a, b, "udp "+ipB+":", "udp "+ra.wanIP+":")
	})
	t.Run("4 both symmetric: relay", func(t *testing.T) {
		l := newLab(t)
		tok := l.coordinator()
		ra, rb := l.router("ra", 11, 1, natSymmetric), l.router("rb", 12, 2, natSymmetric)
		nsA, _ := l.behind(ra, "a", 2)
		nsB, _ := l.behind(rb, "b", 2)
		a, b := l.join(nsA, "a", tok), l.join(nsB, "b", tok)
		l.connect(t, a, b, "relay coordinator", "relay coordinator")
	})
	t.Run("4b both symmetric, one forwards TCP: SSH", func(t *testing.T) {
		l := newLab(t)
		tok := l.coordinator()
		ra, rb := l.router("ra", 11, 1, natSymmetric), l.router("rb", 12, 2, natSymmetric)
		nsA, _ := l.behind(ra, "a", 2)
		nsB, ipB := l.behind(rb, "b", 2)
		l.Must("ip", "netns", "exec", rb.ns, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p", "tcp",
			"--dport", "2222", "-j", "DNAT", "--to-destination", ipB+":2222")
		a := l.join(nsA, "a", tok)
		b := l.join(nsB, "b", tok, "--ssh-listen", ":2222", "--ssh-advertise", rb.wanIP+":2222")
		l.connect(t, a, b, "ssh "+rb.wanIP+":2222", "ssh")
	})
	t.Run("5 UDP blocked at one side: SSH", func(t *testing.T) {
		l := newLab(t)
		tok := l.coordinator()
		ra := l.router("ra", 11, 1, natEIM)
		l.Must("ip", "netns", "exec", ra.ns, "iptables", "-A", "FORWARD", "-p", "udp", "-j", "DROP")
		nsA, _ := l.behind(ra, "a", 2)
		nsB, ipB := l.public("b", 30)
		a := l.join(nsA, "a", tok)
		b := l.join(nsB, "b", tok, "--ssh-listen", ":2222")
		l.connect(t, a, b, "ssh "+ipB+":2222", "ssh")
	})
	t.Run("6 only TCP 443 to the coordinator: relay", func(t *testing.T) {
		l := newLab(t)
		tok := l.coordinator()
		ra, rb := l.router("ra", 11, 1, natEIM), l.router("rb", 12, 2, natEIM)
		for _, rule := range [][]string{
			{"-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
			{"-A", "FORWARD", "-i", "lan", "-p", "tcp", "-d", coordIP, "--dport", "443", "-j", "ACCEPT"},
			{"-P", "FORWARD", "DROP"},
		} {
			l.Must(append([]string{"ip", "netns", "exec", ra.ns, "iptables"}, rule...)...)
		}
		nsA, _ := l.behind(ra, "a", 2)
		nsB, _ := l.behind(rb, "b", 2)
		a, b := l.join(nsA, "a", tok), l.join(nsB, "b", tok)
		l.connect(t, a, b, "relay coordinator", "relay coordinator")
	})
	t.Run("8 the only direct way is IPv6", func(t *testing.T) {
		l := newLab(t)
		tok := l.coordinator()
		nsA, _ := l.public("a", 31)
		nsB, ipB := l.public("b", 32)
		// A second link between the two carries only IPv6 (ULA); IPv4 UDP
		// between them is dropped, so the direct path must be IPv6.
		l.Must("ip", "link", "add", "v6", "netns", nsA, "type", "veth", "peer", "name", "v6", "netns", nsB)
		for _, side := range []struct{ ns, addr string }{{nsA, "fd00:8::a/64"}, {nsB, "fd00:8::b/64"}} {
			l.Must("ip", "-n", side.ns, "addr", "add", side.addr, "dev", "v6", "nodad")
			l.Must("ip", "-n", side.ns, "link", "set", "v6", "up")
		}
		l.Must("ip", "netns", "exec", nsA, "iptables", "-A", "OUTPUT", "-p", "udp", "-d", ipB, "-j", "DROP")
		l.Must("ip", "netns", "exec", nsA, "iptables", "-A", "INPUT", "-p", "udp", "-s", ipB, "-j", "DROP")
		a, b := l.join(nsA, "a", tok), l.join(nsB, "b", tok)
		l.connect(t, a, b, "udp [fd00:8::b]:", "udp [fd00:8::a]:")
	})
	t.Run("7 underlay address changes mid-transfer", func(t *testing.T) {
		l := newLab(t)
		tok := l.coordinator()
		ra := l.router("ra", 11, 1, natEIM)
		nsA, _ := l.behind(ra, "a", 2)
		nsB, ipB := l.public("b", 30)
		a, b := l.join(nsA, "a", tok), l.join(nsB, "b", tok)
		l.connect(t, a, b, "udp "+ipB+":", "udp "+ra.wanIP+":")

		const size = 400 << 20
		port := 6001
		recv := l.Start(b.ns, "recv-move", l.tool, "recv", fmt.Sprintf("%s:%d", b.ip, port))
		sendDone := make(chan error, 1)
		var sendOut string
		go func() {
			out, err := l.Run(a.ns, 3*time.Minute, l.tool, "send", fmt.Sprintf("%s:%d", b.ip, port), fmt.Sprint(size), "9")
			sendOut = out
			sendDone <- err
		}()
		time.Sleep(700 * time.Millisecond)
		newIP := inetPrefix + "31"
		moved := time.Now()
		l.Must("ip", "-n", b.ns, "addr", "del", ipB+"/24", "dev", "eth0")
		l.Must("ip", "-n", b.ns, "addr", "add", newIP+"/24", "dev", "eth0")
		for !l.pingOnce(a.ns, b.ip) {
			if time.Since(moved) > 30*time.Second {
				t.Fatalf("no ping through the tunnel within 30s of the address change; paths %q / %q", l.path(a), l.path(b))
			}
		}
		recovered := time.Since(moved)
		if err := <-sendDone; err != nil {
			t.Fatalf("transfer across the address change: %v", err)
		}
		<-recv.Done()
		got, _ := os.ReadFile(recv.Log)
		if sent := strings.Fields(sendOut); len(sent) < 3 || !strings.Contains(string(got), "recv "+sent[1]+" "+sent[2]) {
			t.Fatalf("transfer across the address change: sent %q, received %q", sendOut, got)
		}
		t.Logf("address %s -> %s: ping through the tunnel again after %v; paths now %q / %q; transfer: %s",
			ipB, newIP, recovered.Round(time.Millisecond), l.path(a), l.path(b), strings.TrimSpace(sendOut))
		deadline := time.Now().Add(20 * time.Second)
		for !strings.HasPrefix(l.path(a), "udp "+newIP+":") {
			if time.Now().After(deadline) {
				t.Fatalf("a's path %q, want udp %s", l.path(a), newIP)
			}
			l.pingOnce(a.ns, b.ip)
			time.Sleep(100 * time.Millisecond)
		}
	})
}
