package reconcile

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// RouteFile is the kernel's IPv4 routing table of this namespace.
const RouteFile = "/proc/net/route"

// DefaultGateway returns the IPv4 default gateway of this namespace (the
// Docker host, when the namespace is on a Docker bridge network); the zero
// Addr when there is no default route.
func DefaultGateway() (netip.Addr, error) {
	f, err := os.Open(RouteFile)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("default gateway: %w", err)
	}
	defer f.Close()
	gw, err := parseDefaultGateway(f)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("default gateway: %s: %w", RouteFile, err)
	}
	return gw, nil
}

// rtfGateway and rtfUp are route flags (RTF_GATEWAY, RTF_UP in
// linux/route.h).
const (
	rtfUp      = 0x1
	rtfGateway = 0x2
)

// parseDefaultGateway reads /proc/net/route's format (a header line, then
// "Iface Destination Gateway Flags RefCnt Use Metric Mask ...", addresses
// as native-endian hex u32s) and returns the gateway of the up default
// route with the lowest metric.
func parseDefaultGateway(r io.Reader) (netip.Addr, error) {
	sc := bufio.NewScanner(r)
	var best netip.Addr
	bestMetric := uint64(0)
	for line := 0; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if line == 0 || len(f) < 8 {
			continue
		}
		if f[1] != "00000000" || f[7] != "00000000" {
			continue // not a default route
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		metric, err2 := strconv.ParseUint(f[6], 10, 32)
		gw, err3 := strconv.ParseUint(f[2], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			return netip.Addr{}, fmt.Errorf("line %d: bad route %q", line+1, sc.Text())
		}
		if flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		// The kernel prints the network-order address as a native u32.
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(gw))
		if !best.IsValid() || metric < bestMetric {
			best, bestMetric = netip.AddrFrom4(a), metric
		}
	}
	return best, sc.Err()
}
