//go:build linux

package forward

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

func must(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs fn on an OS thread switched into namespace ns; the thread
// dies with its goroutine. Sockets made in fn belong to ns.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread exits with the goroutine
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// lab is three namespaces: peer (P, 10.201.2.2) reaches the node (N, the
// "agent's" namespace, mesh address 100.64.0.5 on its link to P) over one
// veth; N reaches the container namespace (C, 10.201.1.2/24) over another.
// C has no route back to P, as a container has none to the mesh range.
type lab struct {
	peer, node, ctr string
	mesh            netip.Addr
	ctrIP           netip.Addr
}

func newLab(t testing.TB) lab {
	testenv.NeedRoot(t, "creates network namespaces and veth pairs and installs nftables rules in them")
	testenv.NeedCommand(t, "nft", "apt-get install nftables")
	testenv.NeedCommand(t, "ip", "apt-get install iproute2")
	var rb [3]byte
	rand.Read(rb[:])
	p := fmt.Sprintf("dwf%x", rb)
	l := lab{peer: p + "p", node: p + "n", ctr: p + "c",
		mesh: netip.MustParseAddr("100.64.0.5"), ctrIP: netip.MustParseAddr("10.201.1.2")}
	for _, ns := range []string{l.peer, l.node, l.ctr} {
		must(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		must(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	must(t, "ip", "link", "add", p+"np", "netns", l.node, "type", "veth", "peer", "name", p+"pn", "netns", l.peer)
	must(t, "ip", "link", "add", p+"nc", "netns", l.node, "type", "veth", "peer", "name", p+"cn", "netns", l.ctr)
	must(t, "ip", "-n", l.node, "addr", "add", "10.201.2.1/24", "dev", p+"np")
	must(t, "ip", "-n", l.node, "addr", "add", l.mesh.String()+"/32", "dev", p+"np")
	must(t, "ip", "-n", l.peer, "addr", "add", "10.201.2.2/24", "dev", p+"pn")
	must(t, "ip", "-n", l.node, "addr", "add", "10.201.1.1/24", "dev", p+"nc")
	must(t, "ip", "-n", l.ctr, "addr", "add", l.ctrIP.String()+"/24", "dev", p+"cn")
	for _, c := range [][]string{{l.node, p + "np"}, {l.node, p + "nc"}, {l.peer, p + "pn"}, {l.ctr, p + "cn"}} {
		must(t, "ip", "-n", c[0], "link", "set", c[1], "up")
	}
	must(t, "ip", "-n", l.peer, "route", "add", l.mesh.String()+"/32", "via", "10.201.2.1")
	must(t, "ip", "netns", "exec", l.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return l
}

func (l lab) nft() NFT { return NFT{Cmd: []string{"ip", "netns", "exec", l.node, "nft"}} }

// kernel returns a Kernel acting in the node's namespace.
func (l lab) kernel(t testing.TB) Kernel {
	f, err := os.Open("/var/run/netns/" + l.node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return Kernel{NetNS: int(f.Fd())}
}

// listen starts a TCP listener answering "hello NAME" and a UDP echo in the
// container namespace on port.
func (l lab) listen(t testing.TB, port uint16, name string) {
	var ln net.Listener
	var pc net.PacketConn
	err := inNetns(l.ctr, func() (err error) {
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "hello %s from %s\n", name, c.RemoteAddr().(*net.TCPAddr).IP)
				io.Copy(io.Discard, c)
			}()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(name+":"), buf[:n]...), a)
		}
	}()
}

// dialTCP connects from the peer to the node's mesh address on port and
// returns the first line, or the error.
func (l lab) dialTCP(port uint16) (string, error) {
	var c net.Conn
	err := inNetns(l.peer, func() (err error) {
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(l.mesh, port).String(), 2*time.Second)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 128)
	n, err := c.Read(b)
	return strings.TrimSpace(string(b[:n])), err
}

func (l lab) dialUDP(port uint16) (string, error) {
	var c net.Conn
	err := inNetns(l.peer, func() (err error) {
		c, err = net.Dial("udp", netip.AddrPortFrom(l.mesh, port).String())
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return "", err
	}
	b := make([]byte, 128)
	n, err := c.Read(b)
	return string(b[:n]), err
}

// TestNetnsForward applies the rendered rules in a namespace and checks them
// with real traffic: the exposed ports reach the container (masqueraded to
// the node's address on the container's network), others do not, and each
// apply replaces the table whole.
func TestNetnsForward(t *testing.T) {
	l := newLab(t)
	l.listen(t, 8080, "web")
	l.listen(t, 9090, "other")
	ctx := context.Background()
	n, list := l.kernel(t), l.nft()

	if _, err := l.dialTCP(8080); err == nil {
		t.Fatal("peer reached port 8080 before any forward was installed")
	}
	web := []desired.Service{
		{Name: "web", Proto: "tcp", Port: 8080, Target: netip.AddrPortFrom(l.ctrIP, 8080)},
		{Name: "web", Proto: "udp", Port: 5353, Target: netip.AddrPortFrom(l.ctrIP, 8080)},
	}
	if err := n.Apply(ctx, l.mesh, web); err != nil {
		t.Fatal(err)
	}
	if got, err := l.dialTCP(8080); err != nil || got != "hello web from 10.201.1.1" {
		t.Errorf("tcp 8080 through the forward = %q, %v; want hello web from 10.201.1.1 (masqueraded)", got, err)
	}
	if got, err := l.dialUDP(5353); err != nil || got != "web:ping" {
		t.Errorf("udp 5353 through the forward = %q, %v; want web:ping", got, err)
	}
	if _, err := l.dialTCP(9090); err == nil {
		t.Error("peer reached port 9090, which is not exposed")
	}

	// Replace: 8080 withdrawn, 9090 forwarded to the other listener. The
	// same apply twice leaves one copy of each rule.
	other := []desired.Service{{Name: "other", Proto: "tcp", Port: 9090, Target: netip.AddrPortFrom(l.ctrIP, 9090)}}
	for range 2 {
		if err := n.Apply(ctx, l.mesh, other); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := list.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(rules, "dnat to"); c != 2 || strings.Contains(rules, "8080") {
		t.Errorf("table after two applies of one service:\n%s\nwant one dnat rule per chain and no 8080", rules)
	}
	if _, err := l.dialTCP(8080); err == nil {
		t.Error("peer reached 8080 after it was withdrawn")
	}
	if got, err := l.dialTCP(9090); err != nil || got != "hello other from 10.201.1.1" {
		t.Errorf("tcp 9090 = %q, %v", got, err)
	}

	if err := n.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	if rules, err := list.Rules(ctx); err != nil || rules != "" {
		t.Errorf("Rules after Withdraw = %q, %v; want no table", rules, err)
	}
	if _, err := l.dialTCP(9090); err == nil {
		t.Error("peer reached 9090 after Withdraw")
	}
	if err := n.Withdraw(ctx); err != nil {
		t.Errorf("second Withdraw = %v, want nil", err)
	}
}

// TestNetnsBadApplyChangesNothing: a batch the kernel refuses leaves the
// table as it was.
func TestNetnsBadApplyChangesNothing(t *testing.T) {
	l := newLab(t)
	l.listen(t, 8080, "web")
	ctx := context.Background()
	n := l.kernel(t)
	good := []desired.Service{{Name: "web", Proto: "tcp", Port: 8080, Target: netip.AddrPortFrom(l.ctrIP, 8080)}}
	if err := n.Apply(ctx, l.mesh, good); err != nil {
		t.Fatal(err)
	}
	before, err := l.nft().Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// NAT to a port range whose registers hold nothing: the kernel refuses
	// the rule, and so the whole batch.
	c, err := n.conn()
	if err != nil {
		t.Fatal(err)
	}
	tbl := replaceTable(c)
	c.AddTable(tbl)
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: 2, RegAddrMin: 7, RegProtoMin: 9, Specified: true},
	}})
	if err := c.Flush(); err == nil {
		t.Fatal("the kernel accepted a NAT from unset registers")
	}
	after, err := l.nft().Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("table after a refused batch:\n%s\nwant as before:\n%s", after, before)
	}
	if got, err := l.dialTCP(8080); err != nil || !strings.HasPrefix(got, "hello web") {
		t.Errorf("after a refused batch, tcp 8080 = %q, %v; want the previous forward", got, err)
	}
	// Apply refuses what it cannot express before talking to the kernel.
	bad := append(good, desired.Service{Name: "x", Proto: "sctp", Port: 1, Target: netip.AddrPortFrom(l.ctrIP, 1)})
	if err := n.Apply(ctx, l.mesh, bad); err == nil || !strings.Contains(err.Error(), "want tcp or udp") {
		t.Errorf("Apply(sctp) = %v, want a refusal", err)
	}
}

// TestNetnsKernelMatchesRender: the table Kernel.Apply installs lists the
// same as the one Render's script installs with nft -f.
func TestNetnsKernelMatchesRender(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	svcs := []desired.Service{
		{Name: "web", Proto: "tcp", Port: 8080, Target: netip.AddrPortFrom(l.ctrIP, 8080)},
		{Name: "pub", Proto: "tcp", Port: 32768, Target: netip.AddrPortFrom(l.ctrIP, 80)},
		{Name: "web", Proto: "udp", Port: 5353, Target: netip.AddrPortFrom(l.ctrIP, 5353)},
	}
	if err := l.nft().Apply(ctx, l.mesh, svcs); err != nil {
		t.Fatal(err)
	}
	want, err := l.nft().Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.kernel(t).Apply(ctx, l.mesh, svcs); err != nil {
		t.Fatal(err)
	}
	got, err := l.nft().Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || !strings.Contains(got, "masquerade") {
		t.Errorf("Kernel.Apply installed\n%s\nRender's script installs\n%s", got, want)
	}
}
