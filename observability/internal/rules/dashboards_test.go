package rules

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tunnelmesh/tunnelmesh/observability/internal/dash"
)

// TestDashboardQueriesParse hands every panel's PromQL (variables
// replaced) to promtool as recording rules, so a query Prometheus cannot
// parse fails here, offline.
func TestDashboardQueriesParse(t *testing.T) {
	bin := promtool(t)
	paths, err := filepath.Glob("../../" + dash.DashboardsDir + "/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no dashboards (%v)", err)
	}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	where := make(map[string]string)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		exprs, err := dash.Expressions(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range exprs {
			if e.Variable {
				continue
			}
			name := fmt.Sprintf("dashboard:query_%d", len(rules))
			where[name] = filepath.Base(p) + ": " + e.Panel
			rules = append(rules, rule{Record: name, Expr: dash.Concrete(e.PromQL)})
		}
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboards", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "dashboards.yml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "check", "rules", f).CombinedOutput()
	if err != nil {
		msg := string(out)
		for name, w := range where {
			msg = strings.ReplaceAll(msg, name+"\"", name+"\" ("+w+")")
		}
		t.Fatalf("promtool check rules on the dashboards' queries: %v\n%s", err, msg)
	}
	if !strings.Contains(string(out), fmt.Sprintf("SUCCESS: %d rules found", len(rules))) {
		t.Errorf("promtool did not check all %d queries:\n%s", len(rules), out)
	}
}
