package coordinator_test

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
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

	// No policy: no filter, and GET says so.
	nm := db.waitNetmap(t, 0, func(nm *api.Netmap) bool { return len(nm.Peers) == 1 })
	if nm.Filter != nil {
		t.Fatalf("netmap without policy has filter %+v", nm.Filter)
	}
	if _, err := tc.admin.Policy(ctx, 0); apiStatus(err) != http.StatusNotFound {
		t.Fatalf("GET policy without one = %v, want 404", err)
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
	if nm2 := db.waitNetmap(t, 0, func(*api.Netmap) bool { return true }); nm2.Filter != nil || nm2.Version != nm.Version {
		t.Fatalf("a refused policy changed the netmap: %+v", nm2)
	}

	resp, err := tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: testPolicy})
	if err != nil || resp.Version != 1 || !resp.Changed || resp.Tests != 3 {
		t.Fatalf("PUT = %+v, %v", resp, err)
	}
	nm = db.waitNetmap(t, nm.Version, func(nm *api.Netmap) bool { return nm.Filter != nil })
	want := netip.PrefixFrom(web.join.IP, 32)
	if nm.Filter.PolicyVersion != 1 || ruleNames(nm.Filter) != "ping,web-db" || nm.Filter.Rules[1].Sources[0] != want {
		t.Fatalf("db1 filter = %+v, want ping and web-db from %v", nm.Filter, want)
	}
	wnm := web.waitNetmap(t, 0, func(nm *api.Netmap) bool { return nm.Filter != nil })
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
