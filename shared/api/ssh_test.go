package api

import (
	"net/netip"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

func TestValidateSSHUser(t *testing.T) {
	for _, ok := range []string{"tunnelmesh", "a", "Tm_1.x-y", "_svc", "abcdefghijklmnopqrstuvwxyz012345"} {
		if err := ValidateSSHUser(ok); err != nil {
			t.Errorf("ValidateSSHUser(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", ".x", "a b", "a:b", "a/b", "ü", "root\n", "abcdefghijklmnopqrstuvwxyz0123456"} {
		if err := ValidateSSHUser(bad); err == nil {
			t.Errorf("ValidateSSHUser(%q) = nil, want error", bad)
		}
	}
}

func TestValidateSSH(t *testing.T) {
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	hk := k.Public()
	var zeroKey nodekey.PublicKey
	ep := netip.MustParseAddrPort("192.0.2.1:22")
	cases := []struct {
		name string
		ep   netip.AddrPort
		hk   *nodekey.PublicKey
		user string
		port uint16
		ok   bool
	}{
		{"none", netip.AddrPort{}, nil, "", 0, true},
		{"sshgw", ep, nil, "", 0, true},
		{"openssh", ep, &hk, "tunnelmesh", 7600, true},
		{"user without host key", ep, nil, "tunnelmesh", 0, false},
		{"port without host key", ep, nil, "", 7600, false},
		{"host key without endpoint", netip.AddrPort{}, &hk, "tunnelmesh", 7600, false},
		{"host key without user", ep, &hk, "", 7600, false},
		{"host key without port", ep, &hk, "tunnelmesh", 0, false},
		{"bad user", ep, &hk, "a b", 7600, false},
		{"zero host key", ep, &zeroKey, "tunnelmesh", 7600, false},
	}
	for _, c := range cases {
		err := ValidateSSH(c.ep, c.hk, c.user, c.port)
		if (err == nil) != c.ok {
			t.Errorf("%s: ValidateSSH = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
