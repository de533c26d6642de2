package reconcile

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseDefaultGateway(t *testing.T) {
	const head = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, tc := range []struct {
		name, table string
		want        string // "" = none
		err         bool
	}{
		{"docker bridge", head +
			"eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
			"eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n", "172.18.0.1", false},
		{"lowest metric wins", head +
			"eth1\t00000000\t0102000A\t0003\t0\t0\t200\t00000000\t0\t0\t0\n" +
			"eth0\t00000000\t010012AC\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "172.18.0.1", false},
		{"down route left out", head +
			"eth0\t00000000\t010012AC\t0002\t0\t0\t0\t00000000\t0\t0\t0\n", "", false},
		{"no default route", head +
			"eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n", "", false},
		{"empty", head, "", false},
		{"bad gateway", head + "eth0\t00000000\tZZ\t0003\t0\t0\t0\t00000000\t0\t0\t0\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDefaultGateway(strings.NewReader(tc.table))
			if (err != nil) != tc.err {
				t.Fatalf("parseDefaultGateway = %v, %v; want error %v", got, err, tc.err)
			}
			want := netip.Addr{}
			if tc.want != "" {
				want = netip.MustParseAddr(tc.want)
			}
			if got != want {
				t.Errorf("parseDefaultGateway = %v, want %v", got, want)
			}
		})
	}
}
