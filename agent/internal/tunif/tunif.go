// Package tunif creates the node's TUN interface and gives it the mesh
// address and route: it opens the device with golang.zx2c4.com/wireguard/tun,
// then uses netlink to assign the node's mesh IP, bring the link up and route
// exactly the mesh prefix into it (nothing else: no default route, no other
// prefix). Closing the interface removes the link, and with it the address
// and route.
package tunif

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// DefaultName is the interface name used when none is configured.
const DefaultName = "tunnelmesh0"

// Overhead is what the tunnel adds to each inner packet on the underlay: an
// IPv6 header (40; IPv4 needs only 20 but the MTU must hold for both), UDP
// (8) and the transport header and AEAD tag (32), as WireGuard counts it.
const Overhead = 80

// MinMTU and MaxMTU bound a configured tunnel MTU.
const (
	MinMTU = 576
	MaxMTU = 65535 - Overhead
)

// MTUFor returns the tunnel MTU for an underlay MTU: 1420 for 1500.
func MTUFor(underlay int) int {
	return max(underlay-Overhead, MinMTU)
}

// Config says what interface to create.
type Config struct {
	Name   string       // interface name; DefaultName when empty
	MTU    int          // tunnel MTU
	Addr   netip.Addr   // the node's mesh IP
	Prefix netip.Prefix // the mesh prefix routed into the interface
	// NoOffload opens the TUN without IFF_VNET_HDR: no TSO/GSO super-packets
	// and no GRO on writes, one packet per read. The switch for kernels where
	// the offloads misbehave; slower.
	NoOffload bool
}

// Validate checks c, naming the bad field.
func (c Config) Validate() error {
	name := c.Name
	if name == "" {
		name = DefaultName
	}
	if len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface %q: name longer than %d characters", name, unix.IFNAMSIZ-1)
	}
	for _, r := range name {
		if r == '/' || r == ' ' || r == ':' || r == '%' || r < 0x21 || r > 0x7e {
			return fmt.Errorf("interface %q: invalid character %q", name, r)
		}
	}
	if c.MTU < MinMTU || c.MTU > MaxMTU {
		return fmt.Errorf("mtu %d: must be between %d and %d", c.MTU, MinMTU, MaxMTU)
	}
	if !c.Addr.Is4() {
		return fmt.Errorf("address %s: must be IPv4", c.Addr)
	}
	if !c.Prefix.IsValid() || !c.Prefix.Addr().Is4() || c.Prefix.Masked() != c.Prefix {
		return fmt.Errorf("mesh prefix %s: must be a masked IPv4 prefix", c.Prefix)
	}
	if !c.Prefix.Contains(c.Addr) {
		return fmt.Errorf("address %s: not in mesh prefix %s", c.Addr, c.Prefix)
	}
	return nil
}

// ErrExists is returned by Create when an interface of that name exists.
var ErrExists = errors.New("interface already exists")

// Interface is an open, configured TUN interface.
type Interface struct {
	// Device is the TUN device; the data plane reads and writes it. Closing
	// it (directly or through Close) removes the interface.
	Device tun.Device

	name  string
	index int
	mtu   int
}

// Create opens the TUN device, addresses it and routes the mesh prefix into
// it. On error nothing is left behind.
func Create(c Config) (*Interface, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("create interface: %w", err)
	}
	if _, err := netlink.LinkByName(c.Name); err == nil {
		return nil, fmt.Errorf("create interface %s: %w (another tunnelmesh node running? choose another with --interface)", c.Name, ErrExists)
	}
	var dev tun.Device
	var err error
	if c.NoOffload {
		dev, err = createPlainTUN(c.Name, c.MTU)
	} else {
		dev, err = tun.CreateTUN(c.Name, c.MTU)
	}
	if err != nil {
		return nil, fmt.Errorf("create interface %s: %w", c.Name, err)
	}
	ifc := &Interface{Device: dev, name: c.Name, mtu: c.MTU}
	if err := ifc.configure(c); err != nil {
		ifc.Close()
		return nil, fmt.Errorf("create interface %s: %w", c.Name, err)
	}
	return ifc, nil
}

// createPlainTUN is tun.CreateTUN without IFF_VNET_HDR.
func createPlainTUN(name string, mtu int) (tun.Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return tun.CreateTUNFromFile(os.NewFile(uintptr(fd), "/dev/net/tun"), mtu)
}

func (i *Interface) configure(c Config) error {
	link, err := netlink.LinkByName(c.Name)
	if err != nil {
		return fmt.Errorf("find link: %w", err)
	}
	i.index = link.Attrs().Index
	if err := netlink.LinkSetMTU(link, c.MTU); err != nil {
		return fmt.Errorf("set mtu %d: %w", c.MTU, err)
	}
	// The address carries the mesh prefix length but no kernel prefix
	// route: the route is added explicitly below, so a clash with another
	// interface routing the same prefix is an error instead of a silent
	// second route.
	addr := &netlink.Addr{
		IPNet: &net.IPNet{IP: c.Addr.AsSlice(), Mask: net.CIDRMask(c.Prefix.Bits(), 32)},
		Flags: unix.IFA_F_NOPREFIXROUTE,
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add address %s: %w", c.Addr, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set link up: %w", err)
	}
	if err := checkRouteFree(c.Prefix); err != nil {
		return err
	}
	route := &netlink.Route{
		LinkIndex: i.index,
		Dst:       &net.IPNet{IP: c.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(c.Prefix.Bits(), 32)},
		Src:       c.Addr.AsSlice(),
		Scope:     netlink.SCOPE_LINK,
		Protocol:  unix.RTPROT_STATIC,
	}
	if err := netlink.RouteAdd(route); err != nil {
		return fmt.Errorf("route %s: %w", c.Prefix, err)
	}
	return nil
}

// checkRouteFree fails when another interface already routes exactly p in
// the main table (typically a second mesh with the same prefix).
func checkRouteFree(p netip.Prefix) error {
	dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	if len(routes) == 0 {
		return nil
	}
	r := routes[0]
	name := fmt.Sprintf("index %d", r.LinkIndex)
	if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
		name = l.Attrs().Name
	}
	return fmt.Errorf("route %s: already routed via %s (another mesh with the same prefix? give each mesh its own mesh_cidr)", p, name)
}

// Name returns the interface name.
func (i *Interface) Name() string { return i.name }

// MTU returns the tunnel MTU.
func (i *Interface) MTU() int { return i.mtu }

// Close closes the TUN device, which removes the interface with its address
// and route; if the link still exists afterwards it is deleted. Close may be
// called more than once, and after the data plane closed the device.
func (i *Interface) Close() error {
	err := i.Device.Close()
	if l, lerr := netlink.LinkByIndex(i.index); lerr == nil && l.Attrs().Name == i.name {
		if derr := netlink.LinkDel(l); derr != nil && err == nil {
			err = fmt.Errorf("delete interface %s: %w", i.name, derr)
		}
	}
	return err
}

// UnderlayMTU returns the MTU of the interface the kernel would use to reach
// dst, or 1500 when that cannot be found (no route, or dst is invalid).
func UnderlayMTU(dst netip.Addr) int {
	const fallback = 1500
	if !dst.IsValid() {
		return fallback
	}
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil || len(routes) == 0 {
		return fallback
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil || link.Attrs().MTU <= 0 {
		return fallback
	}
	if routes[0].MTU > 0 {
		return min(routes[0].MTU, link.Attrs().MTU)
	}
	mtu := link.Attrs().MTU
	if link.Attrs().Flags&net.FlagLoopback != 0 {
		return fallback // a coordinator on this host says nothing about the path to peers
	}
	return mtu
}
