package meshnet

import (
	"net/netip"
	"slices"
	"testing"
)

func TestParseCIDR(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"100.64.0.0/10", "100.64.0.0/10", false},
		{" 10.0.0.0/8 ", "10.0.0.0/8", false},
		{"192.168.7.0/30", "192.168.7.0/30", false},
		{"100.64.0.1/10", "", true}, // host bits
		{"fd00::/64", "", true},
		{"10.0.0.0/31", "", true},
		{"10.0.0.0/7", "", true},
		{"nonsense", "", true},
	}
	for _, tt := range tests {
		got, err := ParseCIDR(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseCIDR(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got.String() != tt.want {
			t.Errorf("ParseCIDR(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestHostAtIndexOf(t *testing.T) {
	p := netip.MustParsePrefix("10.1.2.0/30")
	if HostCount(p) != 2 {
		t.Fatalf("HostCount = %d, want 2", HostCount(p))
	}
	for i, want := range []string{"10.1.2.1", "10.1.2.2"} {
		a, err := HostAt(p, uint32(i))
		if err != nil || a.String() != want {
			t.Errorf("HostAt(%d) = %s, %v; want %s", i, a, err, want)
		}
		j, err := IndexOf(p, a)
		if err != nil || j != uint32(i) {
			t.Errorf("IndexOf(%s) = %d, %v; want %d", a, j, err, i)
		}
	}
	if _, err := HostAt(p, 2); err == nil {
		t.Error("HostAt past the end succeeded")
	}
	for _, s := range []string{"10.1.2.0", "10.1.2.3", "10.1.3.1"} {
		if _, err := IndexOf(p, netip.MustParseAddr(s)); err == nil {
			t.Errorf("IndexOf(%s) succeeded", s)
		}
	}
	if n := HostCount(DefaultCIDR); n != 1<<22-2 {
		t.Errorf("HostCount(default) = %d", n)
	}
}

func TestPTR(t *testing.T) {
	a := netip.MustParseAddr("100.64.1.2")
	name := PTRName(a)
	if name != "2.1.64.100.in-addr.arpa." {
		t.Fatalf("PTRName = %q", name)
	}
	got, ok := ParsePTRName("2.1.64.100.IN-ADDR.ARPA")
	if !ok || got != a {
		t.Errorf("ParsePTRName = %s, %v", got, ok)
	}
	for _, bad := range []string{"1.64.100.in-addr.arpa.", "256.1.64.100.in-addr.arpa.", "01.1.64.100.in-addr.arpa.", "x.1.64.100.in-addr.arpa.", "2.1.64.100.ip6.arpa."} {
		if _, ok := ParsePTRName(bad); ok {
			t.Errorf("ParsePTRName(%q) ok", bad)
		}
	}
}

func TestReverseZones(t *testing.T) {
	z := ReverseZones(DefaultCIDR)
	if len(z) != 64 || z[0] != "64.100.in-addr.arpa." || z[63] != "127.100.in-addr.arpa." {
		t.Errorf("ReverseZones(default) = %d zones, first %q last %q", len(z), z[0], z[len(z)-1])
	}
	if got := ReverseZones(netip.MustParsePrefix("10.0.0.0/8")); !slices.Equal(got, []string{"10.in-addr.arpa."}) {
		t.Errorf("ReverseZones(10/8) = %v", got)
	}
	if got := ReverseZones(netip.MustParsePrefix("192.168.1.0/24")); !slices.Equal(got, []string{"1.168.192.in-addr.arpa."}) {
		t.Errorf("ReverseZones(/24) = %v", got)
	}
	if got := ReverseZones(netip.MustParsePrefix("192.168.1.0/30")); !slices.Equal(got, []string{"0.1.168.192.in-addr.arpa.", "1.1.168.192.in-addr.arpa.", "2.1.168.192.in-addr.arpa.", "3.1.168.192.in-addr.arpa."}) {
		t.Errorf("ReverseZones(/30) = %v", got)
	}
}
