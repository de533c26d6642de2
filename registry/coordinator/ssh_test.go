package coordinator_test

import (
	"context"
	"net/http"
	"net/netip"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// sameSSH reports whether peer carries exactly the given SSH fields.
func sameSSH(p api.Node, ep netip.AddrPort, hk *[32]byte, user string, port uint16) bool {
	if (p.SSHHostKey == nil) != (hk == nil) || (hk != nil && [32]byte(*p.SSHHostKey) != *hk) {
		return false
	}
	return p.SSHEndpoint == ep && p.SSHUser == user && p.SSHPacketPort == port
}

// A node publishing an OpenSSH endpoint at join shows its host key, login
// user and packet port in its peers' netmaps; an endpoint report replaces
// them (here with an sshgw endpoint, which has none).
func TestOpenSSHEndpointInNetmap(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	a := tc.join(t, tok, "a")
	key, hostKey := newKey(t), newKey(t).Public()
	ep := netip.MustParseAddrPort("192.0.2.7:22")
	resp, err := regclient.Join(ctx, tc.hc, tc.URL(), api.JoinRequest{Token: tok, Name: "b", PublicKey: key.Public(),
		SSHEndpoint: ep, SSHHostKey: &hostKey, SSHUser: "tunnelmesh", SSHPacketPort: 7600}, key)
	if err != nil {
		t.Fatalf("join b with an OpenSSH endpoint: %v", err)
	}
	b := tc.nodeClient(t, key, resp)
	hk := [32]byte(hostKey)
	nm := a.waitNetmap(t, 0, func(nm *api.Netmap) bool { return sameSSH(peerNames(nm)["b"], ep, &hk, "tunnelmesh", 7600) })

	gw := netip.MustParseAddrPort("192.0.2.7:2222")
	if err := b.client.ReportEndpoints(ctx, api.EndpointsRequest{SSHEndpoint: gw}); err != nil {
		t.Fatal(err)
	}
	nm = a.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { return sameSSH(peerNames(nm)["b"], gw, nil, "", 0) })
	if err := b.client.ReportEndpoints(ctx, api.EndpointsRequest{SSHEndpoint: ep, SSHHostKey: &hostKey, SSHUser: "mesh", SSHPacketPort: 7601}); err != nil {
		t.Fatal(err)
	}
	a.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { return sameSSH(peerNames(nm)["b"], ep, &hk, "mesh", 7601) })
}

// SSH fields that do not fit together, or a bad user or endpoint, are
// refused with 400 at join and in endpoint reports, and change nothing.
func TestSSHValidation(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	a := tc.join(t, tok, "a")
	before := a.waitNetmap(t, 0, func(*api.Netmap) bool { return true })
	hk := newKey(t).Public()
	ep := netip.MustParseAddrPort("192.0.2.7:22")
	for _, tt := range []struct {
		name string
		req  api.EndpointsRequest
	}{
		{"user without host key", api.EndpointsRequest{SSHEndpoint: ep, SSHUser: "tunnelmesh"}},
		{"packet port without host key", api.EndpointsRequest{SSHEndpoint: ep, SSHPacketPort: 7600}},
		{"host key without endpoint", api.EndpointsRequest{SSHHostKey: &hk, SSHUser: "tunnelmesh", SSHPacketPort: 7600}},
		{"host key without user", api.EndpointsRequest{SSHEndpoint: ep, SSHHostKey: &hk, SSHPacketPort: 7600}},
		{"host key without packet port", api.EndpointsRequest{SSHEndpoint: ep, SSHHostKey: &hk, SSHUser: "tunnelmesh"}},
		{"bad user", api.EndpointsRequest{SSHEndpoint: ep, SSHHostKey: &hk, SSHUser: "-oProxyCommand=x", SSHPacketPort: 7600}},
		{"user with space", api.EndpointsRequest{SSHEndpoint: ep, SSHHostKey: &hk, SSHUser: "a b", SSHPacketPort: 7600}},
		{"unspecified endpoint", api.EndpointsRequest{SSHEndpoint: netip.MustParseAddrPort("0.0.0.0:22"), SSHHostKey: &hk, SSHUser: "u", SSHPacketPort: 7600}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := a.client.ReportEndpoints(ctx, tt.req)
			if apiStatus(err) != http.StatusBadRequest || apiCode(err) != api.CodeBadRequest {
				t.Errorf("ReportEndpoints(%+v) = %v, want 400 %s", tt.req, err, api.CodeBadRequest)
			}
			k := newKey(t)
			_, err = regclient.Join(ctx, tc.hc, tc.URL(), api.JoinRequest{Token: tok, Name: "b", PublicKey: k.Public(),
				SSHEndpoint: tt.req.SSHEndpoint, SSHHostKey: tt.req.SSHHostKey, SSHUser: tt.req.SSHUser, SSHPacketPort: tt.req.SSHPacketPort}, k)
			if apiStatus(err) != http.StatusBadRequest {
				t.Errorf("join with %+v = %v, want 400", tt.req, err)
			}
		})
	}
	nm, err := a.client.Netmap(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if nm.Version != before.Version || len(nm.Peers) != 0 || nm.Self.SSHEndpoint.IsValid() || nm.Self.SSHHostKey != nil || nm.Self.SSHUser != "" {
		t.Fatalf("after refused requests: version %d (was %d), peers %d, self %+v; want nothing changed",
			nm.Version, before.Version, len(nm.Peers), nm.Self)
	}
}
