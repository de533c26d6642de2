package tunif

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/icmp"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/packet"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

// inNetns runs fn on a locked OS thread inside a new, private network
// namespace that disappears when fn returns.
func inNetns(t *testing.T, fn func()) {
	t.Helper()
	testenv.NeedRoot(t, "creates a network namespace and a TUN device")
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is not unlocked: it ends with this goroutine, so the
		// runtime throws it away instead of reusing it in the namespace.
		orig, err := netns.Get()
		if err != nil {
			t.Errorf("get netns: %v", err)
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			t.Errorf("new netns: %v", err)
			return
		}
		defer ns.Close()
		defer netns.Set(orig)
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			netlink.LinkSetUp(lo)
		}
		fn()
	}()
	<-done
}

func uniqueName(t *testing.T) string {
	var b [3]byte
	rand.Read(b[:])
	return "tmt" + hex.EncodeToString(b[:])
}

func TestCreateRoot(t *testing.T) {
	inNetns(t, func() {
		name := uniqueName(t)
		c := Config{Name: name, MTU: 1380, Addr: netip.MustParseAddr("100.64.0.7"), Prefix: netip.MustParsePrefix("100.64.0.0/10")}
		ifc, err := Create(c)
		if err != nil {
			t.Errorf("Create: %v", err)
			return
		}
		link, err := netlink.LinkByName(name)
		if err != nil {
			t.Errorf("link %s missing after Create: %v", name, err)
			ifc.Close()
			return
		}
		if got := link.Attrs().MTU; got != 1380 {
			t.Errorf("link mtu = %d, want 1380", got)
		}
		if link.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("link is not up")
		}
		addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != "100.64.0.7/10" {
			t.Errorf("addresses = %v, want exactly 100.64.0.7/10", addrs)
		}
		routes, _ := netlink.RouteList(link, netlink.FAMILY_V4)
		var dsts []string
		for _, r := range routes {
			if r.Table == unix.RT_TABLE_MAIN && r.Dst != nil {
				dsts = append(dsts, r.Dst.String())
			}
		}
		if len(dsts) != 1 || dsts[0] != "100.64.0.0/10" {
			t.Errorf("main-table routes via %s = %v, want only 100.64.0.0/10", name, dsts)
		}
		// A second interface for the same prefix is refused and leaves nothing.
		name2 := uniqueName(t)
		if _, err := Create(Config{Name: name2, MTU: 1420, Addr: netip.MustParseAddr("100.64.0.8"), Prefix: c.Prefix}); err == nil || !strings.Contains(err.Error(), "already routed via "+name) {
			t.Errorf("Create(same prefix) = %v, want already routed error", err)
		}
		if _, err := netlink.LinkByName(name2); err == nil {
			t.Errorf("failed Create left interface %s behind", name2)
		}
		// The same name twice is refused.
		if _, err := Create(Config{Name: name, MTU: 1420, Addr: netip.MustParseAddr("100.65.0.8"), Prefix: netip.MustParsePrefix("100.65.0.0/16")}); !errors.Is(err, ErrExists) {
			t.Errorf("Create(same name) = %v, want ErrExists", err)
		}
		if err := ifc.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := netlink.LinkByName(name); err == nil {
			t.Errorf("interface %s still exists after Close", name)
		}
		if err := ifc.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestCreateNoOffloadRoot(t *testing.T) {
	inNetns(t, func() {
		name := uniqueName(t)
		ifc, err := Create(Config{Name: name, MTU: 1420, Addr: netip.MustParseAddr("100.64.0.7"), Prefix: netip.MustParsePrefix("100.64.0.0/10"), NoOffload: true})
		if err != nil {
			t.Errorf("Create(NoOffload): %v", err)
			return
		}
		defer ifc.Close()
		if got := ifc.Device.BatchSize(); got != 1 {
			t.Errorf("BatchSize() = %d without offloads, want 1", got)
		}
	})
}

// TestPMTURoot checks that the kernel accepts the ICMP answer of package
// icmp written back into the TUN device: a socket sending a packet larger
// than the tunnel's path MTU learns the smaller MTU.
func TestPMTURoot(t *testing.T) {
	inNetns(t, func() {
		name := uniqueName(t)
		ifc, err := Create(Config{Name: name, MTU: 1420, Addr: netip.MustParseAddr("100.64.0.1"), Prefix: netip.MustParsePrefix("100.64.0.0/10")})
		if err != nil {
			t.Errorf("Create: %v", err)
			return
		}
		defer ifc.Close()

		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			t.Errorf("socket: %v", err)
			return
		}
		defer unix.Close(fd)
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{100, 64, 0, 2}}); err != nil {
			t.Errorf("connect: %v", err)
			return
		}
		const pathMTU = 1280
		payload := make([]byte, 1400-28)
		if _, err := unix.Write(fd, payload); err != nil {
			t.Errorf("send: %v", err)
			return
		}
		dev := ifc.Device
		const offset = 16
		bufs := make([][]byte, dev.BatchSize())
		sizes := make([]int, len(bufs))
		for i := range bufs {
			bufs[i] = make([]byte, offset+65536)
		}
		deadline := time.Now().Add(time.Minute)
		var pkt []byte
		for pkt == nil && time.Now().Before(deadline) {
			n, err := dev.Read(bufs, sizes, offset)
			if err != nil {
				t.Errorf("read tun: %v", err)
				return
			}
			for i := 0; i < n; i++ {
				p := bufs[i][offset : offset+sizes[i]]
				if len(p) >= 20 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_UDP && len(p) == 1400 {
					pkt = p
					break
				}
			}
		}
		if pkt == nil {
			t.Errorf("did not read the 1400-byte packet from TUN")
			return
		}
		out := make([]byte, offset+icmp.MaxIPv6Answer)
		var pp packet.Parsed
		pp.Parse(pkt)
		n := icmp.FragNeeded(out[offset:], &pp, pathMTU)
		if n == 0 {
			t.Errorf("FragNeeded gave no answer for a DF packet")
			return
		}
		if _, err := dev.Write([][]byte{out[:offset+n]}, offset); err != nil {
			t.Errorf("write tun: %v", err)
			return
		}
		var got int
		for time.Now().Before(deadline) {
			got, _ = unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU)
			if got == pathMTU {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got != pathMTU {
			t.Errorf("socket path MTU = %d after the ICMP answer, want %d", got, pathMTU)
		}
	})
}
