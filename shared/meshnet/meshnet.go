// Package meshnet holds mesh addressing: the mesh prefix (default
// 100.64.0.0/10, any IPv4 prefix from /8 to /30 may be configured), host
// enumeration for IP allocation, and reverse-DNS names.
package meshnet

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultCIDR is the mesh prefix used when none is configured: the shared
// address space of RFC 6598, as Tailscale and others use.
var DefaultCIDR = netip.MustParsePrefix("100.64.0.0/10")

// ErrNotInMesh is returned for addresses outside the mesh prefix.
var ErrNotInMesh = errors.New("address not in mesh prefix")

// ParseCIDR parses and validates a mesh prefix: IPv4, masked (no host bits
// set), between /8 and /30 so that it holds at least two hosts.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("mesh cidr %q: %w", s, err)
	}
	if err := Validate(p); err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

// Validate checks a mesh prefix (see ParseCIDR).
func Validate(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("mesh cidr %s: must be an IPv4 prefix", p)
	}
	if p.Masked() != p {
		return fmt.Errorf("mesh cidr %s: host bits set (did you mean %s?)", p, p.Masked())
	}
	if p.Bits() < 8 || p.Bits() > 30 {
		return fmt.Errorf("mesh cidr %s: prefix length must be between /8 and /30", p)
	}
	return nil
}

// HostCount is the number of usable host addresses in p: every address but
// the network and broadcast addresses.
func HostCount(p netip.Prefix) uint32 {
	return uint32(1)<<(32-p.Bits()) - 2
}

// HostAt returns the i-th usable host address of p (i from 0 to
// HostCount(p)-1): the network address plus i+1.
func HostAt(p netip.Prefix, i uint32) (netip.Addr, error) {
	if i >= HostCount(p) {
		return netip.Addr{}, fmt.Errorf("host index %d out of range for %s", i, p)
	}
	return u32ToAddr(addrToU32(p.Addr()) + i + 1), nil
}

// IndexOf returns the host index of a in p, the inverse of HostAt.
func IndexOf(p netip.Prefix, a netip.Addr) (uint32, error) {
	if !a.Is4() || !p.Contains(a) {
		return 0, fmt.Errorf("%s: %w %s", a, ErrNotInMesh, p)
	}
	off := addrToU32(a) - addrToU32(p.Addr())
	if off == 0 || off > HostCount(p) {
		return 0, fmt.Errorf("%s is the network or broadcast address of %s", a, p)
	}
	return off - 1, nil
}

// PTRName returns the reverse-DNS name of an IPv4 address
// ("4.3.2.1.in-addr.arpa.").
func PTRName(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", b[3], b[2], b[1], b[0])
}

// ParsePTRName is the inverse of PTRName; ok is false for names that are not
// a full IPv4 reverse name. Matching is case-insensitive; the trailing dot is
// optional.
func ParsePTRName(name string) (netip.Addr, bool) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	rest, ok := strings.CutSuffix(name, ".in-addr.arpa")
	if !ok {
		return netip.Addr{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, s := range parts {
		n, err := strconv.ParseUint(s, 10, 8)
		if err != nil || (len(s) > 1 && s[0] == '0') {
			return netip.Addr{}, false
		}
		b[3-i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

// ReverseZones returns the in-addr.arpa zones that together cover p exactly
// at octet boundaries: for 100.64.0.0/10, the 64 zones 64.100.in-addr.arpa.
// through 127.100.in-addr.arpa.
func ReverseZones(p netip.Prefix) []string {
	octets := (p.Bits() + 7) / 8 // octets the zone names carry
	n := 1 << (octets*8 - p.Bits())
	base := addrToU32(p.Addr())
	zones := make([]string, 0, n)
	for i := 0; i < n; i++ {
		v := base + uint32(i)<<(32-octets*8)
		b := u32ToAddr(v).As4()
		parts := make([]string, 0, octets)
		for j := octets - 1; j >= 0; j-- {
			parts = append(parts, strconv.Itoa(int(b[j])))
		}
		zones = append(zones, strings.Join(parts, ".")+".in-addr.arpa.")
	}
	return zones
}

func addrToU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32ToAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
