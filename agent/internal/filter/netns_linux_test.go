//go:build linux

package filter_test

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/faketun"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device/memnet"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/filter"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

func must(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs fn on an OS thread switched into namespace ns; the thread
// dies with its goroutine.
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

// synTo is a TCP SYN with valid checksums, which a kernel answers.
func synTo(src, dst netip.Addr, sport, dport uint16) []byte {
	b := tcpPacket(src, dst, sport, dport, syn)
	packet.PutIPv4HeaderChecksum(b)
	binary.BigEndian.PutUint16(b[20+14:], 65535) // window
	binary.BigEndian.PutUint16(b[20+16:], packet.Checksum(b[20:], packet.PseudoHeaderSum4(b, len(b)-20, packet.ProtoTCP)))
	return b
}

// TestLabNetnsNonMeshDestination: node B runs on a real TUN in a namespace
// with IP forwarding on and a LAN behind it (10.77.0.0/24: B at .1, a host
// at .2). Its policy allows A tcp/80. A peer A running modified software
// sends SYNs to port 80 of B's LAN address and of the LAN host through its
// session with B: nothing comes back, while its SYN to B's mesh address is
// answered.
func TestLabNetnsNonMeshDestination(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, a veth pair and a TUN device")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun")
	}
	var rb [3]byte
	rand.Read(rb[:])
	prefix := fmt.Sprintf("tmf%x", rb)
	nsB, nsL := prefix+"b", prefix+"l"
	for _, ns := range []string{nsB, nsL} {
		must(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	must(t, "ip", "link", "add", prefix+"vb", "netns", nsB, "type", "veth", "peer", "name", prefix+"vl", "netns", nsL)
	must(t, "ip", "-n", nsB, "addr", "add", "10.77.0.1/24", "dev", prefix+"vb")
	must(t, "ip", "-n", nsL, "addr", "add", "10.77.0.2/24", "dev", prefix+"vl")
	for _, c := range [][]string{{nsB, prefix + "vb"}, {nsL, prefix + "vl"}, {nsB, "lo"}, {nsL, "lo"}} {
		must(t, "ip", "-n", c[0], "link", "set", c[1], "up")
	}
	must(t, "ip", "-n", nsL, "route", "add", "default", "via", "10.77.0.1")
	must(t, "ip", "netns", "exec", nsB, "sysctl", "-qw", "net.ipv4.ip_forward=1")

	// Listeners on port 80: every address of B, and the LAN host (a
	// kernel answers a SYN to a closed port too, with a reset).
	for _, l := range []struct{ ns, addr string }{{nsB, "0.0.0.0:80"}, {nsL, "10.77.0.2:80"}} {
		var ln net.Listener
		if err := inNetns(l.ns, func() (err error) { ln, err = net.Listen("tcp4", l.addr); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}

	mem := memnet.New()
	var psk [32]byte
	psk[0] = 9
	keyA, err := nodekey.FromSeed([]byte(strings.Repeat("a", 32)))
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := nodekey.FromSeed([]byte(strings.Repeat("b", 32)))
	if err != nil {
		t.Fatal(err)
	}
	ipA, ipB := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.0.2")
	ulA, ulB := netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("192.0.2.2:51820")
	log := slog.New(slog.DiscardHandler)

	flt := filter.New(filter.Config{Self: ipB})
	if err := flt.SetFilter(allow(1, "a-http", ipA, 80)); err != nil {
		t.Fatal(err)
	}
	cfgB := device.Config{PrivateKey: keyB, PSK: psk, MeshID: "lab", ListenPort: ulB.Port(), Self: ipB, PersistentKeepalive: -1,
		Filter: flt, Peers: []device.PeerConfig{{Name: "a", PublicKey: keyA.Public(), IP: ipA, Endpoints: []device.Endpoint{device.UDPEndpoint(ulA)}}}}
	tunName := prefix + "t"
	var devB *device.Device
	if err := inNetns(nsB, func() error {
		td, err := device.CreateTUN(tunName, device.DefaultMTU, false)
		if err != nil {
			return err
		}
		devB, err = device.New(td, mem.NewBind(ulB.Addr(), 16), cfgB, log)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devB.Close() })
	must(t, "ip", "-n", nsB, "addr", "add", ipB.String()+"/10", "dev", tunName)
	must(t, "ip", "-n", nsB, "link", "set", tunName, "up")

	// A knows B under whatever address it attacks: its device then sends
	// packets for that address through its session with B.
	tunA := faketun.New("a", device.DefaultMTU, 64)
	cfgA := func(bIP netip.Addr) device.Config {
		return device.Config{PrivateKey: keyA, PSK: psk, MeshID: "lab", ListenPort: ulA.Port(), Self: ipA, PersistentKeepalive: -1,
			Peers: []device.PeerConfig{{Name: "b", PublicKey: keyB.Public(), IP: bIP, Endpoints: []device.Endpoint{device.UDPEndpoint(ulB)}}}}
	}
	devA, err := device.New(tunA, mem.NewBind(ulA.Addr(), 16), cfgA(ipB), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devA.Close() })

	// answered sends SYNs from A to dst:80 until something comes back from
	// dst, for up to within.
	answered := func(dst netip.Addr, within time.Duration) bool {
		t.Helper()
		if err := devA.Reconfig(cfgA(dst)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(within)
		for sport := uint16(40000); time.Now().Before(deadline); sport++ {
			tunA.Inject(synTo(ipA, dst, sport, 80))
			wait := time.After(250 * time.Millisecond)
		recv:
			for {
				select {
				case p := <-tunA.Outbound():
					if len(p) >= 20 && netip.AddrFrom4([4]byte(p[12:16])) == dst {
						return true
					}
				case <-wait:
					break recv
				}
			}
		}
		return false
	}

	if !answered(ipB, 20*time.Second) {
		t.Fatal("A's SYN to B's mesh address on the allowed port went unanswered: the lab does not work")
	}
	for _, dst := range []string{"10.77.0.2", "10.77.0.1"} {
		before := flt.Stats().Drops[filter.DropDestination]
		if answered(netip.MustParseAddr(dst), 3*time.Second) {
			t.Errorf("A's SYN to %s:80 through B was answered: B delivered a packet for an address other than its own", dst)
		}
		if flt.Stats().Drops[filter.DropDestination] == before {
			t.Errorf("B counted no destination drop for A's SYNs to %s", dst)
		}
	}
	t.Logf("B's filter drops: %v", flt.Stats().Drops)
}
