package coordinator_test

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

const testPolicy = `tags: [web, db]
rules:
  - {name: web-db, from: tag:web, to: tag:db, proto: tcp, ports: [5432]}
  - {name: ping, from: "*", to: "*", proto: icmp}
tests:
  - {from: web1, accept: [db1:5432, db1/icmp], deny: [db1:22]}
`

func ruleNames(f *api.Filter) string {
	var names []string
	for _, r := range f.Rules {
		names = append(names, r.Name)
	}
	return strings.Join(names, ",")
}

func TestPolicyApplyReachesNetmaps(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	web := tc.join(t, tc.token(t, api.CreateTokenRequest{Tags: []string{"web"}}), "web1")
	db := tc.join(t, tc.token(t, api.CreateTokenRequest{Tags: []string{"db"}}), "db1")

	// No policy applied: the built-in default (version 0) is in force.
	nm := db.waitNetmap(t, 0, func(nm *api.Netmap) bool { return len(nm.Peers) == 1 && nm.Filter != nil })
	if nm.Filter.PolicyVersion != 0 || ruleNames(nm.Filter) != "ping" {
		t.Fatalf("netmap without an applied policy has filter %+v, want the default's ping", nm.Filter)
	}
	if got, err := tc.admin.Policy(ctx, 0); err != nil || got.Version != 0 {
		t.Fatalf("GET policy without one applied = %+v, %v, want the default as version 0", got, err)
	}

	// Invalid and failing policies are refused with the line and the test.
	_, err := tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: "rules:\n  - {from: a, to: b, proto: tcp, ports: [90-80]}\n"})
	if apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `policy.yaml:2: rules[0].ports[0]: invalid port range "90-80"`) {
		t.Fatalf("PUT invalid = %v", err)
	}
	_, err = tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: testPolicy + "  - {from: web1, deny: [db1:5432]}\n"})
	if apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "web1 should not reach db1:5432 but rule web-db allows it") {
		t.Fatalf("PUT failing tests = %v", err)
	}
	// A test naming a node that is neither in the mesh nor a test node.
	_, err = tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: testPolicy + "  - {from: ghost, deny: [db1:22]}\n"})
	if apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `node "ghost" is neither in the mesh nor under test_nodes`) {
		t.Fatalf("PUT with unknown test node = %v", err)
	}
	if nm2 := db.waitNetmap(t, 0, func(*api.Netmap) bool { return true }); nm2.Filter.PolicyVersion != 0 || nm2.Version != nm.Version {
		t.Fatalf("a refused policy changed the netmap: %+v", nm2)
	}

	resp, err := tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: testPolicy})
	if err != nil || resp.Version != 1 || !resp.Changed || resp.Tests != 3 {
		t.Fatalf("PUT = %+v, %v", resp, err)
	}
	nm = db.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { return nm.Filter != nil && nm.Filter.PolicyVersion == 1 })
	want := netip.PrefixFrom(web.join.IP, 32)
	if nm.Filter.PolicyVersion != 1 || ruleNames(nm.Filter) != "ping,web-db" || nm.Filter.Rules[1].Sources[0] != want {
		t.Fatalf("db1 filter = %+v, want ping and web-db from %v", nm.Filter, want)
	}
	wnm := web.waitNetmap(t, 0, func(nm *api.Netmap) bool { return nm.Filter != nil && nm.Filter.PolicyVersion == 1 })
	if ruleNames(wnm.Filter) != "ping" {
		t.Fatalf("web1 filter = %+v: web1 must learn nothing of web-db", wnm.Filter)
	}

	// GET, versions, optimistic locking, unchanged PUT.
	got, err := tc.admin.Policy(ctx, 0)
	if err != nil || got.Policy != testPolicy || got.Version != 1 {
		t.Fatalf("GET = %+v, %v", got, err)
	}
	if _, err := tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: testPolicy + "#\n", IfVersion: 5}); apiStatus(err) != http.StatusConflict {
		t.Fatalf("PUT if_version 5 = %v, want 409", err)
	}
	if resp, err := tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: testPolicy}); err != nil || resp.Changed {
		t.Fatalf("PUT same = %+v, %v", resp, err)
	}
	tighter := strings.Replace(testPolicy, "  - {name: ping, from: \"*\", to: \"*\", proto: icmp}\n", "", 1)
	tighter = strings.Replace(tighter, ", db1/icmp", "", 1)
	if resp, err := tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: tighter, IfVersion: 1}); err != nil || resp.Version != 2 {
		t.Fatalf("PUT v2 = %+v, %v", resp, err)
	}
	nm = db.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { return nm.Filter != nil && nm.Filter.PolicyVersion == 2 })
	if ruleNames(nm.Filter) != "web-db" {
		t.Fatalf("db1 filter after v2 = %+v", nm.Filter)
	}
	vs, err := tc.admin.PolicyVersions(ctx)
	if err != nil || len(vs) != 2 || vs[0].Version != 2 {
		t.Fatalf("versions = %+v, %v", vs, err)
	}
	if old, err := tc.admin.Policy(ctx, 1); err != nil || old.Policy != testPolicy {
		t.Fatalf("GET version 1 = %+v, %v", old, err)
	}

	// A new node gets its filter; restarting keeps the policy.
	tc.stop()
	tc2 := start(t, testConfig(t, tc.dir), coordinator.Options{})
	if got, err := tc2.admin.Policy(ctx, 0); err != nil || got.Version != 2 {
		t.Fatalf("GET after restart = %+v, %v", got, err)
	}
	db2 := tc2.join(t, tc2.token(t, api.CreateTokenRequest{Tags: []string{"db"}}), "db2")
	nm = db2.waitNetmap(t, 0, func(nm *api.Netmap) bool { return nm.Filter != nil })
	if nm.Filter.PolicyVersion != 2 || ruleNames(nm.Filter) != "web-db" {
		t.Fatalf("db2 filter after restart = %+v", nm.Filter)
	}
}

func TestInitialPolicy(t *testing.T) {
	tc := start(t, testConfig(t, t.TempDir()), coordinator.Options{InitialPolicy: policy.DefaultYAML})
	a := tc.join(t, tc.token(t, api.CreateTokenRequest{}), "a")
	tc.join(t, tc.token(t, api.CreateTokenRequest{Tags: []string{"dns"}}), "ns1")
	nm := a.waitNetmap(t, 0, func(nm *api.Netmap) bool { return len(nm.Peers) == 1 && nm.Filter != nil && len(nm.Filter.Rules) > 0 })
	if ruleNames(nm.Filter) != "ping" {
		t.Fatalf("a's filter under the default policy = %+v, want ping only", nm.Filter)
	}
	if _, err := coordinator.New(context.Background(), testConfig(t, t.TempDir()), coordinator.Options{InitialPolicy: []byte("rules: [")}); err == nil {
		t.Fatal("coordinator started with an invalid initial policy")
	}
}

func TestPolicyFileConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, policy.DefaultYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, filepath.Join(dir, "data"))
	cfg.PolicyFile = file
	tc := start(t, cfg, coordinator.Options{})
	got, err := tc.admin.Policy(context.Background(), 0)
	if err != nil || got.Version != 1 || got.Policy != string(policy.DefaultYAML) {
		t.Fatalf("policy from policy_file = %+v, %v", got, err)
	}
	cfg2 := testConfig(t, filepath.Join(dir, "data2"))
	cfg2.PolicyFile = filepath.Join(dir, "missing.yaml")
	if _, err := coordinator.New(context.Background(), cfg2, coordinator.Options{}); err == nil || !strings.Contains(err.Error(), "policy_file") {
		t.Fatalf("New with a missing policy_file = %v", err)
	}
}

// With nothing configured (no policy_file, nothing applied) the built-in
// default policy is in force: every node's netmap filter allows ICMP from
// every node, and port 53 on nodes tagged dns. An applied policy replaces it.
func TestDefaultPolicyWithEmptyConfig(t *testing.T) {
	cfg, err := coordinator.ParseConfig(nil)
	if err != nil {
		t.Fatalf("ParseConfig(empty) = %v", err)
	}
	base := testConfig(t, t.TempDir())
	cfg.Listen, cfg.STUNListen, cfg.DataDir = base.Listen, base.STUNListen, base.DataDir
	tc := start(t, cfg, coordinator.Options{})
	ctx := context.Background()
	a := tc.join(t, tc.token(t, api.CreateTokenRequest{}), "a")
	b := tc.join(t, tc.token(t, api.CreateTokenRequest{}), "b")
	ns := tc.join(t, tc.token(t, api.CreateTokenRequest{Tags: []string{"dns"}}), "ns1")
	all := []netip.Prefix{
		netip.PrefixFrom(a.join.IP, 32), netip.PrefixFrom(b.join.IP, 32), netip.PrefixFrom(ns.join.IP, 32),
	}
	for _, n := range []*testNode{a, b, ns} {
		nm := n.waitNetmap(t, 0, func(nm *api.Netmap) bool {
			return len(nm.Peers) == 2 && nm.Filter != nil && len(nm.Filter.Rules) > 0 && len(nm.Filter.Rules[0].Sources) == 2
		})
		want := "ping"
		if n == ns {
			want = "dns,dns,ping"
		}
		if nm.Filter.PolicyVersion != 0 || ruleNames(nm.Filter) != want {
			t.Fatalf("%s's filter under the default policy = %+v, want %s at policy version 0", n.join.Name, nm.Filter, want)
		}
		for _, r := range nm.Filter.Rules {
			if r.Name == "ping" && r.Protocol != "icmp" || r.Name == "dns" && (len(r.Ports) != 1 || r.Ports[0] != api.PortRange{First: 53, Last: 53}) {
				t.Fatalf("%s: rule %+v under the default policy", n.join.Name, r)
			}
			for _, src := range r.Sources {
				if !slices.Contains(all, src) || src == netip.PrefixFrom(n.join.IP, 32) {
					t.Fatalf("%s's rule %s has source %v, want the other nodes", n.join.Name, r.Name, src)
				}
			}
		}
	}

	// The default state as the admin API shows it: GET returns the default
	// policy as version 0, and no version is stored.
	got, err := tc.admin.Policy(ctx, 0)
	if err != nil || got.Version != 0 || got.Policy != string(policy.DefaultYAML) {
		t.Fatalf("GET policy in the default state = %+v, %v; want the default policy as version 0", got, err)
	}
	if vs, err := tc.admin.PolicyVersions(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("versions in the default state = %+v, %v; want none", vs, err)
	}

	// An applied policy wins, and applying the default's text stores it.
	resp, err := tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: "rules: []\n"})
	if err != nil || resp.Version != 1 || !resp.Changed {
		t.Fatalf("PUT deny-all = %+v, %v", resp, err)
	}
	nm := a.waitNetmap(t, 0, func(nm *api.Netmap) bool { return nm.Filter != nil && nm.Filter.PolicyVersion == 1 })
	if len(nm.Filter.Rules) != 0 {
		t.Fatalf("a's filter under an applied deny-all policy = %+v, want no rules", nm.Filter)
	}
	resp, err = tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: string(policy.DefaultYAML)})
	if err != nil || resp.Version != 2 || !resp.Changed {
		t.Fatalf("PUT default text = %+v, %v", resp, err)
	}
	tc.stop()
	tc2 := start(t, cfg, coordinator.Options{})
	if got, err := tc2.admin.Policy(ctx, 0); err != nil || got.Version != 2 {
		t.Fatalf("GET after restart = %+v, %v; want the stored version 2", got, err)
	}
}
