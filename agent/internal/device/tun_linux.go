//go:build linux

package device

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// CreateTUN creates a Linux TUN interface for a Device. With offload it is
// tun.CreateTUN, which asks the kernel for IFF_VNET_HDR so TCP/UDP
// segmentation offloads (GSO/GRO) carry up to 64 KiB per read and write.
// Without offload the device is opened without IFF_VNET_HDR: one packet per
// read and write, the switch for kernels where the offloads misbehave.
// Addressing and routing are the caller's (package tunif).
func CreateTUN(name string, mtu int, offload bool) (tun.Device, error) {
	if offload {
		return tun.CreateTUN(name, mtu)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create tun %q: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tun %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tun %q: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tun %q: %w", name, err)
	}
	d, err := tun.CreateTUNFromFile(os.NewFile(uintptr(fd), "/dev/net/tun"), mtu)
	if err != nil {
		return nil, fmt.Errorf("create tun %q: %w", name, err)
	}
	return d, nil
}
