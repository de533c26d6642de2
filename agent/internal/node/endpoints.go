package node

import (
	"net"
	"net/netip"
	"slices"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// localEndpoints returns the node's candidate UDP endpoints: every up,
// non-loopback interface's unicast addresses (IPv4, and global IPv6) with the
// listen port; never the TUN interface or addresses inside the mesh.
func localEndpoints(tunName string, mesh netip.Prefix, port uint16) []netip.AddrPort {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []netip.AddrPort
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Name == tunName {
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
