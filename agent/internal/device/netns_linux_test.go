//go:build linux

package device

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNetns runs fn on an OS thread switched into namespace ns. The thread is
// never returned to the scheduler's pool (it exits with the goroutine).
func inNetns(t testing.TB, ns string, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread dies with this goroutine
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

// TestNetnsRealTUN runs two devices on real TUN interfaces in two network
// namespaces joined by a veth pair, and proves the kernel path works: the
// kernel's ping, Device.Ping, and a TCP transfer checked by SHA-256.
func TestNetnsRealTUN(t *testing.T) {
	testenv.NeedRoot(t, "creates network namespaces, a veth pair and TUN devices")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		testenv.Missing(t, "needs /dev/net/tun: "+err.Error())
	}
	for _, offload := range []bool{true, false} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) { netnsPair(t, offload) })
	}
}

// netnsUnderlay creates two namespaces joined by a veth pair
// (10.99.0.1/24 and 10.99.0.2/24), removed when the test ends.
func netnsUnderlay(t testing.TB) (prefix, nsA, nsB string) {
	var rb [3]byte
	rand.Read(rb[:])
	prefix = fmt.Sprintf("tmd%x", rb)
	nsA, nsB = prefix+"a", prefix+"b"
	for _, ns := range []string{nsA, nsB} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	run(t, "ip", "link", "add", prefix+"va", "netns", nsA, "type", "veth", "peer", "name", prefix+"vb", "netns", nsB)
	run(t, "ip", "-n", nsA, "addr", "add", "10.99.0.1/24", "dev", prefix+"va")
	run(t, "ip", "-n", nsB, "addr", "add", "10.99.0.2/24", "dev", prefix+"vb")
	for _, c := range [][]string{{nsA, prefix + "va"}, {nsB, prefix + "vb"}, {nsA, "lo"}, {nsB, "lo"}} {
		run(t, "ip", "-n", c[0], "link", "set", c[1], "up")
	}
	return prefix, nsA, nsB
}

// startNetnsPair runs a TunnelMesh device on a real TUN in each namespace.
func startNetnsPair(t testing.TB, offload bool) (m *mesh, devs []*Device, nsA, nsB string) {
	prefix, nsA, nsB := netnsUnderlay(t)
	m = newMeshStopped(t, 2, defaultTiming())
	m.nodes[0].ul = netip.MustParseAddrPort("10.99.0.1:51820")
	m.nodes[1].ul = netip.MustParseAddrPort("10.99.0.2:51820")
	devs = make([]*Device, 2)
	for i, ns := range []string{nsA, nsB} {
		nd := m.nodes[i]
		tunName := prefix + "t"
		cfg := m.config(i)
		err := inNetns(t, ns, func() error {
			var td tun.Device
			var err error
			td, err = CreateTUN(tunName, DefaultMTU, offload)
			if err != nil {
				return fmt.Errorf("create tun: %w", err)
			}
			dev, err := New(td, NewBind(offload, 0), cfg, testLogger(nd.name))
			if err != nil {
				return err
			}
			devs[i] = dev
			return nil
		})
		if err != nil {
			t.Fatalf("start %s in %s: %v", nd.name, ns, err)
		}
		t.Cleanup(func() { devs[i].Close() })
		run(t, "ip", "-n", ns, "addr", "add", nd.ip.String()+"/10", "dev", tunName)
		run(t, "ip", "-n", ns, "link", "set", tunName, "mtu", fmt.Sprint(DefaultMTU), "up")
	}
	return m, devs, nsA, nsB
}

func netnsPair(t *testing.T, offload bool) {
	checkGoroutines(t)
	m, devs, nsA, nsB := startNetnsPair(t, offload)
	a, b := m.nodes[0], m.nodes[1]

	// The kernel's own ping, through the TUN both ways.
	out := run(t, "ip", "netns", "exec", nsA, "ping", "-c", "3", "-i", "0.2", "-W", "5", b.ip.String())
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping: %s", out)
	}
	run(t, "ip", "netns", "exec", nsB, "ping", "-c", "2", "-i", "0.2", "-W", "5", a.ip.String())

	// Device.Ping: the reply comes from b's kernel and is caught before a's TUN.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rtt, path, err := devs[0].Ping(ctx, b.ip)
	if err != nil {
		t.Fatalf("Device.Ping: %v", err)
	}
	if path != "udp 10.99.0.2:51820" {
		t.Fatalf("Device.Ping path = %q", path)
	}
	t.Logf("Device.Ping rtt %v via %s", rtt, path)

	// A TCP transfer through the tunnel arrives intact.
	const size = 32 << 20
	payload := make([]byte, size)
	rand.Read(payload)
	el := tcpTransfer(t, nsA, nsB, b.ip, payload, true)
	t.Logf("offload=%v: %d MiB in %v (%.0f Mbit/s)", offload, size>>20, el, float64(size*8)/el.Seconds()/1e6)
	st := devs[1].Status()
	if len(st.Peers) != 1 || st.Peers[0].RxBytes < size {
		t.Fatalf("b status: %+v", st.Peers)
	}
}

// tcpTransfer sends payload over TCP from namespace nsA to dst:5201 in nsB
// and returns how long it took. With verify, the receiver checks SHA-256.
func tcpTransfer(t testing.TB, nsA, nsB string, dst netip.Addr, payload []byte, verify bool) time.Duration {
	t.Helper()
	want := sha256.Sum256(payload)
	var ln net.Listener
	if err := inNetns(t, nsB, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(dst.String(), "5201"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan [32]byte, 1)
	go func() {
		var sum [32]byte
		c, err := ln.Accept()
		if err != nil {
			got <- sum
			return
		}
		defer c.Close()
		if !verify {
			io.Copy(io.Discard, c)
			got <- want
			return
		}
		h := sha256.New()
		io.Copy(h, c)
		h.Sum(sum[:0])
		got <- sum
	}()
	start := time.Now()
	var c net.Conn
	if err := inNetns(t, nsA, func() (err error) {
		c, err = net.DialTimeout("tcp", net.JoinHostPort(dst.String(), "5201"), 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(c, bytes.NewReader(payload)); err != nil {
		t.Fatalf("send: %v", err)
	}
	c.Close()
	select {
	case sum := <-got:
		if sum != want {
			t.Fatal("TCP transfer corrupted: checksum mismatch")
		}
	case <-time.After(120 * time.Second):
		t.Fatal("TCP transfer did not finish")
	}
	return time.Since(start)
}

// startWireguardGoPair runs wireguard-go's device (the reference) on real
// TUNs in two namespaces, with the same keys and addresses as
// startNetnsPair, for an apples-to-apples comparison.
func startWireguardGoPair(t testing.TB) (m *mesh, nsA, nsB string) {
	prefix, nsA, nsB := netnsUnderlay(t)
	m = newMeshStopped(t, 2, defaultTiming())
	m.nodes[0].ul = netip.MustParseAddrPort("10.99.0.1:51820")
	m.nodes[1].ul = netip.MustParseAddrPort("10.99.0.2:51820")
	for i, ns := range []string{nsA, nsB} {
		nd, other := m.nodes[i], m.nodes[1-i]
		priv := nd.key.X25519()
		peerPub, err := other.key.Public().X25519()
		if err != nil {
			t.Fatal(err)
		}
		tunName := prefix + "w"
		var dev *wgdevice.Device
		err = inNetns(t, ns, func() error {
			td, err := tun.CreateTUN(tunName, DefaultMTU)
			if err != nil {
				return err
			}
			dev = wgdevice.NewDevice(td, conn.NewStdNetBind(), wgdevice.NewLogger(wgdevice.LogLevelSilent, ""))
			uapi := fmt.Sprintf("private_key=%s\nlisten_port=%d\npublic_key=%s\nendpoint=%s\nallowed_ip=%s/32\n",
				hex.EncodeToString(priv[:]), nd.ul.Port(), hex.EncodeToString(peerPub[:]), other.ul, other.ip)
			if err := dev.IpcSet(uapi); err != nil {
				return err
			}
			return dev.Up()
		})
		if err != nil {
			t.Fatalf("wireguard-go in %s: %v", ns, err)
		}
		t.Cleanup(dev.Close)
		run(t, "ip", "-n", ns, "addr", "add", nd.ip.String()+"/10", "dev", tunName)
		run(t, "ip", "-n", ns, "link", "set", tunName, "mtu", fmt.Sprint(DefaultMTU), "up")
	}
	return m, nsA, nsB
}

// BenchmarkNetnsTCP compares single-stream TCP throughput through
// TunnelMesh and through wireguard-go on the same real kernel path (two
// namespaces, veth, TUN with offloads). Needs root. Run with
// -bench NetnsTCP -benchtime 3x.
func BenchmarkNetnsTCP(b *testing.B) {
	testenv.NeedRoot(b, "creates network namespaces, a veth pair and TUN devices")
	payload := make([]byte, 128<<20)
	rand.Read(payload)
	for _, impl := range []string{"tunnelmesh", "wireguard-go", "tunnelmesh-nooffload"} {
		b.Run(impl, func(b *testing.B) {
			var m *mesh
			var nsA, nsB string
			switch impl {
			case "wireguard-go":
				m, nsA, nsB = startWireguardGoPair(b)
			default:
				m, _, nsA, nsB = startNetnsPair(b, impl == "tunnelmesh")
			}
			dst := m.nodes[1].ip
			tcpTransfer(b, nsA, nsB, dst, payload[:1<<20], true) // handshake, warm-up
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			var total time.Duration
			for i := 0; i < b.N; i++ {
				total += tcpTransfer(b, nsA, nsB, dst, payload, false)
			}
			b.ReportMetric(float64(len(payload))*8*float64(b.N)/total.Seconds()/1e6, "Mbit/s")
		})
	}
}

// pingMedian runs the kernel's ping from ns to dst and returns the median RTT.
func pingMedian(t testing.TB, ns string, dst netip.Addr, count int) time.Duration {
	out := run(t, "ip", "netns", "exec", ns, "ping", "-c", fmt.Sprint(count), "-i", "0.005", "-W", "2", dst.String())
	var rtts []time.Duration
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, "time=")
		if i < 0 {
			continue
		}
		f := strings.Fields(line[i+5:])
		if len(f) < 2 {
			continue
		}
		d, err := time.ParseDuration(f[0] + f[1])
		if err == nil {
			rtts = append(rtts, d)
		}
	}
	if len(rtts) == 0 {
		t.Fatalf("ping %s from %s: no replies\n%s", dst, ns, out)
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// BenchmarkNetnsCompare prints one table: single-stream TCP throughput and
// median ping RTT over the raw veth, through wireguard-go, and through
// TunnelMesh, measured in alternating rounds so machine noise hits all
// three alike. Needs root. Run with -bench NetnsCompare -benchtime 1x.
func BenchmarkNetnsCompare(b *testing.B) {
	testenv.NeedRoot(b, "creates network namespaces, a veth pair and TUN devices")
	tm, _, tmA, tmB := startNetnsPair(b, true)
	wg, wgA, wgB := startWireguardGoPair(b)
	type target struct {
		name     string
		nsA, nsB string
		dst      netip.Addr
		mbits    []float64
		rtt      time.Duration
	}
	targets := []*target{
		{name: "veth", nsA: tmA, nsB: tmB, dst: netip.MustParseAddr("10.99.0.2")},
		{name: "wireguard-go", nsA: wgA, nsB: wgB, dst: wg.nodes[1].ip},
		{name: "tunnelmesh", nsA: tmA, nsB: tmB, dst: tm.nodes[1].ip},
	}
	payload := make([]byte, 64<<20)
	rand.Read(payload)
	for _, tg := range targets {
		tcpTransfer(b, tg.nsA, tg.nsB, tg.dst, payload[:1<<20], true) // handshakes, warm-up
	}
	b.ResetTimer()
	for range b.N {
		for round := 0; round < 3; round++ {
			for _, tg := range targets {
				d := tcpTransfer(b, tg.nsA, tg.nsB, tg.dst, payload, false)
				tg.mbits = append(tg.mbits, float64(len(payload))*8/d.Seconds()/1e6)
			}
		}
		for _, tg := range targets {
			tg.rtt = pingMedian(b, tg.nsA, tg.dst, 200)
		}
	}
	b.StopTimer()
	med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	veth, wgt, tmt := targets[0], targets[1], targets[2]
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-14s %14s %12s\n", "path", "TCP Mbit/s", "ping median")
	for _, tg := range targets {
		fmt.Fprintf(&sb, "%-14s %14.0f %12v\n", tg.name, med(tg.mbits), tg.rtt)
	}
	fmt.Fprintf(&sb, "tunnelmesh/wireguard-go throughput: %.2fx; added RTT over veth: tunnelmesh %v, wireguard-go %v\n",
		med(tmt.mbits)/med(wgt.mbits), tmt.rtt-veth.rtt, wgt.rtt-veth.rtt)
	b.Log(sb.String())
	b.ReportMetric(med(tmt.mbits)/med(wgt.mbits), "tm/wg")
}
