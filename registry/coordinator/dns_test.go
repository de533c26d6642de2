package coordinator_test

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

var dnsService = api.Service{Name: api.ServiceDNS, Protocol: "udp", Port: 53}

// allows reports whether f lets src reach proto/port.
func allows(f *api.Filter, src netip.Addr, proto string, port uint16) bool {
	if f == nil {
		return false
	}
	for _, r := range f.Rules {
		if r.Protocol != proto && r.Protocol != "any" {
			continue
		}
		if !slices.ContainsFunc(r.Sources, func(p netip.Prefix) bool { return p.Contains(src) }) {
			continue
		}
		if len(r.Ports) == 0 || slices.ContainsFunc(r.Ports, func(pr api.PortRange) bool { return pr.First <= port && port <= pr.Last }) {
			return true
		}
	}
	return false
}

// A node with the dns tag that publishes the dns service becomes a DNS
// server in every netmap, after the configured ones; the default policy lets
// the other nodes reach its port 53. A node without the tag that publishes
// the service shows the service (for SRV names) but serves nobody's
// resolver. Withdrawing the service or removing the node takes the server
// out of the list.
func TestDNSServersFromServices(t *testing.T) {
	static := netip.MustParseAddr("100.64.255.254")
	tc := start(t, testConfig(t, t.TempDir()), coordinator.Options{InitialPolicy: policy.DefaultYAML, DNSServers: []netip.Addr{static}})
	ctx := context.Background()
	a := tc.join(t, tc.token(t, api.CreateTokenRequest{}), "a")
	nm := a.waitNetmap(t, 0, func(*api.Netmap) bool { return true })
	if !slices.Equal(nm.DNS.Servers, []netip.Addr{static}) || nm.DNS.Zone != "mesh" {
		t.Fatalf("DNS before any server joined = %+v, want zone mesh, servers [%s]", nm.DNS, static)
	}

	// ns1 publishes dns at join.
	key := newKey(t)
	resp, err := joinWith(ctx, tc, tc.token(t, api.CreateTokenRequest{Tags: []string{"dns"}}), "ns1", key, []api.Service{dnsService})
	if err != nil {
		t.Fatalf("join ns1: %v", err)
	}
	ns1 := tc.nodeClient(t, key, resp)
	want := []netip.Addr{static, resp.IP}
	nm = a.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { return slices.Equal(nm.DNS.Servers, want) })
	if p := peerNames(nm)["ns1"]; !slices.Equal(p.Services, []api.Service{dnsService}) {
		t.Fatalf("ns1 as a's peer: services %v, want [%v]", p.Services, dnsService)
	}
	self := ns1.waitNetmap(t, 0, func(nm *api.Netmap) bool { return nm.Filter != nil && len(nm.Peers) == 1 })
	for _, proto := range []string{"udp", "tcp"} {
		if !allows(self.Filter, a.join.IP, proto, 53) {
			t.Errorf("default policy: ns1's filter %+v does not let a reach %s/53", self.Filter, proto)
		}
	}
	if allows(self.Filter, a.join.IP, "tcp", 22) {
		t.Errorf("default policy: ns1's filter lets a reach tcp/22")
	}

	// rogue has no dns tag: its service is listed, it is no DNS server.
	rogue := tc.join(t, tc.token(t, api.CreateTokenRequest{}), "rogue")
	if err := rogue.client.ReportEndpoints(ctx, api.EndpointsRequest{Services: []api.Service{dnsService}}); err != nil {
		t.Fatalf("rogue reports the dns service: %v", err)
	}
	nm = a.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { return len(peerNames(nm)["rogue"].Services) == 1 })
	if !slices.Equal(nm.DNS.Servers, want) {
		t.Fatalf("after an untagged node published dns: servers %v, want %v", nm.DNS.Servers, want)
	}
	rself := rogue.waitNetmap(t, 0, func(nm *api.Netmap) bool { return nm.Filter != nil })
	if allows(rself.Filter, a.join.IP, "udp", 53) {
		t.Errorf("untagged rogue's filter opens udp/53: %+v", rself.Filter)
	}

	// ns1 withdraws the service (an endpoint report without services).
	if err := ns1.client.ReportEndpoints(ctx, api.EndpointsRequest{}); err != nil {
		t.Fatal(err)
	}
	nm = a.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { return slices.Equal(nm.DNS.Servers, []netip.Addr{static}) })
	if p := peerNames(nm)["ns1"]; p.Services != nil {
		t.Fatalf("ns1 after withdrawing: services %v, want none", p.Services)
	}
	// ... publishes it again, then is removed.
	if err := ns1.client.ReportEndpoints(ctx, api.EndpointsRequest{Services: []api.Service{dnsService}}); err != nil {
		t.Fatal(err)
	}
	nm = a.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { return slices.Equal(nm.DNS.Servers, want) })
	if err := tc.admin.RemoveNode(ctx, "ns1"); err != nil {
		t.Fatal(err)
	}
	a.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { return slices.Equal(nm.DNS.Servers, []netip.Addr{static}) })
}

// Bad services are refused with 400 and change nothing.
func TestServicesValidation(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	a := tc.join(t, tok, "a")
	before := a.waitNetmap(t, 0, func(*api.Netmap) bool { return true })
	many := make([]api.Service, api.MaxServices+1)
	for i := range many {
		many[i] = api.Service{Name: "s" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Protocol: "tcp", Port: 80}
	}
	for _, tt := range []struct {
		name string
		svcs []api.Service
	}{
		{"protocol", []api.Service{{Name: "dns", Protocol: "sctp", Port: 53}}},
		{"port 0", []api.Service{{Name: "dns", Protocol: "udp"}}},
		{"name", []api.Service{{Name: "Bad_Name", Protocol: "udp", Port: 53}}},
		{"empty name", []api.Service{{Protocol: "udp", Port: 53}}},
		{"duplicate", []api.Service{dnsService, dnsService}},
		{"too many", many},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := a.client.ReportEndpoints(ctx, api.EndpointsRequest{Services: tt.svcs})
			if apiStatus(err) != http.StatusBadRequest || apiCode(err) != api.CodeBadRequest {
				t.Errorf("ReportEndpoints(%v) = %v, want 400 %s", tt.svcs, err, api.CodeBadRequest)
			}
			if _, err := joinWith(ctx, tc, tok, "b", newKey(t), tt.svcs); apiStatus(err) != http.StatusBadRequest {
				t.Errorf("join with %v = %v, want 400", tt.svcs, err)
			}
		})
	}
	nm, err := a.client.Netmap(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if nm.Version != before.Version || len(nm.Peers) != 0 || nm.Self.Services != nil {
		t.Fatalf("after refused requests: version %d (was %d), peers %d, services %v; want nothing changed",
			nm.Version, before.Version, len(nm.Peers), nm.Self.Services)
	}
}

// joinWith joins name with key, publishing svcs.
func joinWith(ctx context.Context, tc *testCoord, token, name string, key nodekey.PrivateKey, svcs []api.Service) (*api.JoinResponse, error) {
	return regclient.Join(ctx, tc.hc, tc.URL(), api.JoinRequest{Token: token, Name: name, PublicKey: key.Public(), Services: svcs}, key)
}
