// Command forwarder is bench.sh's floor for userspace tunnels: it moves IP
// packets between a TUN device and one UDP peer with nothing in between: no
// encryption, no batching, no goroutine hand-offs; one OS thread sleeps in
// poll(2) on both descriptors and, once woken, moves packets both ways until
// neither has any (so a reply the kernel queues while a packet is written is
// sent without another wakeup). Its ping RTT is what a userspace tunnel pays
// on the machine for the kernel waking a process at the hops, measured in the
// same run as wireguard-go's and TunnelMesh's. (One blocked thread per
// direction measured slower here.) With -busy-poll it never sleeps: it spins
// on both descriptors, burning a CPU, which shows what is left without the
// wakeups.
//
// It is a measuring instrument with no security whatsoever, not part of
// TunnelMesh.
//
//	forwarder -dev NAME -addr CIDR -listen IPv4:PORT -peer IPv4:PORT [-busy-poll]
//
// It adds CIDR to the device and sets it up with MTU 1420 (ip(8)), then runs
// until killed.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

func main() {
	dev := flag.String("dev", "fwd0", "TUN device name")
	addr := flag.String("addr", "", "address of the device, CIDR (e.g. 10.201.0.1/24)")
	listen := flag.String("listen", "", "UDP address to receive on, IPv4:PORT")
	peer := flag.String("peer", "", "UDP address of the other forwarder, IPv4:PORT")
	busy := flag.Bool("busy-poll", false, "spin instead of sleeping in poll(2) (uses a whole CPU)")
	flag.Parse()
	if err := run(*dev, *addr, *listen, *peer, *busy); err != nil {
		fmt.Fprintln(os.Stderr, "forwarder:", err)
		os.Exit(1)
	}
}

func run(dev, addr, listen, peer string, busy bool) error {
	la, err := netip.ParseAddrPort(listen)
	if err != nil || !la.Addr().Is4() {
		return fmt.Errorf("-listen %q: want IPv4:PORT", listen)
	}
	pa, err := netip.ParseAddrPort(peer)
	if err != nil || !pa.Addr().Is4() {
		return fmt.Errorf("-peer %q: want IPv4:PORT", peer)
	}
	if _, err := netip.ParsePrefix(addr); err != nil {
		return fmt.Errorf("-addr %q: want a CIDR", addr)
	}
	tun, err := openTUN(dev)
	if err != nil {
		return err
	}
	for _, args := range [][]string{
		{"addr", "add", addr, "dev", dev},
		{"link", "set", dev, "mtu", "1420", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
	}
	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("udp socket: %w", err)
	}
	if err := unix.Bind(sock, &unix.SockaddrInet4{Port: int(la.Port()), Addr: la.Addr().As4()}); err != nil {
		return fmt.Errorf("bind %s: %w", la, err)
	}
	to := &unix.SockaddrInet4{Port: int(pa.Port()), Addr: pa.Addr().As4()}
	return forward(tun, sock, to, busy)
}

// openTUN creates the TUN device dev (no packet information header) and
// returns its file descriptor.
func openTUN(dev string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		return -1, fmt.Errorf("-dev %q: %w", dev, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return -1, fmt.Errorf("create tun %s: %w", dev, err)
	}
	return fd, nil
}

// forward moves packets between tun and sock on one OS thread until an
// error other than "nothing to read" occurs; busy: never sleep.
func forward(tun, sock int, to unix.Sockaddr, busy bool) error {
	runtime.LockOSThread()
	for _, fd := range []int{tun, sock} {
		if err := unix.SetNonblock(fd, true); err != nil {
			return fmt.Errorf("set nonblocking: %w", err)
		}
	}
	fds := []unix.PollFd{{Fd: int32(tun), Events: unix.POLLIN}, {Fd: int32(sock), Events: unix.POLLIN}}
	buf := make([]byte, 1<<16)
	for {
		if !busy {
			if _, err := unix.Poll(fds, -1); err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("poll: %w", err)
			}
		}
		for moved := true; moved; {
			moved = false
			n, err := unix.Read(tun, buf)
			switch {
			case err == nil:
				moved = true
				if err := unix.Sendto(sock, buf[:n], 0, to); err != nil && !again(err) {
					return fmt.Errorf("send udp: %w", err)
				}
			case !again(err):
				return fmt.Errorf("read tun: %w", err)
			}
			n, _, err = unix.Recvfrom(sock, buf, 0)
			switch {
			case err == nil:
				moved = true
				if _, err := unix.Write(tun, buf[:n]); err != nil && !again(err) {
					return fmt.Errorf("write tun: %w", err)
				}
			case !again(err):
				return fmt.Errorf("receive udp: %w", err)
			}
		}
	}
}

// again reports whether err only means "try again later".
func again(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)
}
