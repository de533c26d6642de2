package node

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// localEndpoints returns the node's candidate UDP endpoints: every up,
// non-loopback interface's unicast addresses (IPv4, and global IPv6) with the
// listen port; never the TUN interface, other layer-3 tunnels (another mesh,
// WireGuard, OpenVPN: a path through them would nest tunnels and overflow
// their MTU), or addresses inside the mesh.
func localEndpoints(tunName string, mesh netip.Prefix, port uint16) []netip.AddrPort {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []netip.AddrPort
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Name == tunName ||
			isL3Tunnel(sysClassNet, ifc.Name) {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if usableEndpoint(ip, mesh) {
				out = append(out, netip.AddrPortFrom(ip, port))
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	out = slices.Compact(out)
	if len(out) > api.MaxEndpoints {
		out = out[:api.MaxEndpoints]
	}
	return out
}

func usableEndpoint(ip netip.Addr, mesh netip.Prefix) bool {
	switch {
	case !ip.IsValid(), ip.IsLoopback(), ip.IsUnspecified(), ip.IsMulticast(),
		ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return false
	case mesh.Contains(ip):
		return false
	case ip.Is6() && !ip.IsGlobalUnicast():
		return false
	}
	return true
}

// sysClassNet is where Linux describes network interfaces.
const sysClassNet = "/sys/class/net"

// arphrdNone is the link type of layer-3 tunnels without a link header: TUN
// devices (every mesh's interface, OpenVPN tun) and WireGuard. PPP links
// (type 512) are real underlays and are not matched.
const arphrdNone = "65534"

// isL3Tunnel reports whether the named interface is a layer-3 tunnel, from
// its link type under root (sysClassNet); false when that cannot be read.
func isL3Tunnel(root, name string) bool {
	b, err := os.ReadFile(filepath.Join(root, name, "type"))
	return err == nil && strings.TrimSpace(string(b)) == arphrdNone
}
