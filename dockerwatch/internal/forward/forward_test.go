package forward

import (
	"net/netip"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
)

func TestRender(t *testing.T) {
	mesh := netip.MustParseAddr("100.64.0.5")
	svcs := []desired.Service{
		{Name: "web", Proto: "tcp", Port: 8080, Target: netip.MustParseAddrPort("172.18.0.2:8080")},
		{Name: "pub", Proto: "tcp", Port: 32768, Target: netip.MustParseAddrPort("172.18.0.3:80")},
		{Name: "web", Proto: "udp", Port: 5353, Target: netip.MustParseAddrPort("172.18.0.2:5353")},
	}
	want := `table ip tunnelmesh_dockerwatch
delete table ip tunnelmesh_dockerwatch
table ip tunnelmesh_dockerwatch {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 100.64.0.5 tcp dport 8080 dnat to 172.18.0.2:8080
		ip daddr 100.64.0.5 tcp dport 32768 dnat to 172.18.0.3:80
		ip daddr 100.64.0.5 udp dport 5353 dnat to 172.18.0.2:5353
	}
	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 100.64.0.5 tcp dport 8080 dnat to 172.18.0.2:8080
		ip daddr 100.64.0.5 tcp dport 32768 dnat to 172.18.0.3:80
		ip daddr 100.64.0.5 udp dport 5353 dnat to 172.18.0.2:5353
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ct status dnat ct original ip daddr 100.64.0.5 masquerade
	}
}
`
	if got := Render(mesh, svcs); got != want {
		t.Errorf("Render =\n%s\nwant\n%s", got, want)
	}
	empty := "table ip tunnelmesh_dockerwatch\ndelete table ip tunnelmesh_dockerwatch\n"
	if got := Render(mesh, nil); got != empty {
		t.Errorf("Render(no services) = %q, want %q", got, empty)
	}
}
