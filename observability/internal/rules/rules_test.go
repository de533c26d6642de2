package rules

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tunnelmesh/tunnelmesh/observability/internal/catalog"
)

const alertsDir = "../../alerts"

// promtool returns the path of promtool, skipping the test when it is not
// installed, or failing it under CI.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found: install Debian's prometheus package (scripts/install-deps.sh)")
		}
		t.Skip("promtool not found: install Debian's prometheus package (scripts/install-deps.sh)")
	}
	return p
}

func ruleFiles(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(alertsDir, "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if !strings.HasSuffix(f, "_test.yml") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatal("no rule files in " + alertsDir)
	}
	return out
}

func TestPromtoolCheckRules(t *testing.T) {
	bin := promtool(t)
	out, err := exec.Command(bin, append([]string{"check", "rules"}, ruleFiles(t)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	bin := promtool(t)
	tests, err := filepath.Glob(filepath.Join(alertsDir, "*_test.yml"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no rule unit tests in %s (%v)", alertsDir, err)
	}
	for i := range tests {
		tests[i] = filepath.Base(tests[i])
	}
	cmd := exec.Command(bin, append([]string{"test", "rules"}, tests...)...)
	cmd.Dir = alertsDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestPromtoolTestRulesCanFail proves the unit tests are checked: the same
// tests against a rule file whose node-down alert waits longer fail.
func TestPromtoolTestRulesCanFail(t *testing.T) {
	bin := promtool(t)
	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join(alertsDir, "tunnelmesh.yml"))
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(rules), "expr: up{service=\"agent\"} == 0\n        for: 2m", "expr: up{service=\"agent\"} == 0\n        for: 10m", 1)
	if broken == string(rules) {
		t.Fatal("could not find the node-down rule to break")
	}
	tests, err := os.ReadFile(filepath.Join(alertsDir, "tunnelmesh_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"tunnelmesh.yml": []byte(broken), "tunnelmesh_test.yml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "test", "rules", "tunnelmesh_test.yml")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("promtool test rules passed against a broken rule:\n%s", out)
	}
	if !strings.Contains(string(out), "TunnelMeshNodeDown") {
		t.Errorf("failure does not name TunnelMeshNodeDown:\n%s", out)
	}
}

func TestRuleMetricNamesExist(t *testing.T) {
	root, err := catalog.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	known, err := catalog.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, path := range ruleFiles(t) {
		f, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				n++
				if len(catalog.Names(r.Expr)) == 0 {
					t.Errorf("%s: %s uses no metric: %q", path, r.Alert, r.Expr)
				}
				if miss := catalog.Missing(known, r.Expr); len(miss) > 0 {
					t.Errorf("%s: %s uses metrics no component exports: %v", path, r.Alert, miss)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no rules")
	}
}

// TestEveryAlertIsUnitTested: each alert has at least one promtool unit
// test case that expects it to fire.
func TestEveryAlertIsUnitTested(t *testing.T) {
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	b, err := os.ReadFile(filepath.Join(alertsDir, "tunnelmesh_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &tf); err != nil {
		t.Fatal(err)
	}
	fires := make(map[string]bool)
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			}
		}
	}
	for _, path := range ruleFiles(t) {
		f, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" && !fires[r.Alert] {
					t.Errorf("alert %s has no unit test that expects it to fire", r.Alert)
				}
			}
		}
	}
}
