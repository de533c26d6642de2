// Package rules holds the tests of the Prometheus alert rules in
// observability/alerts: promtool's syntax check and unit tests, and the
// check that every metric a rule uses is one the components export.
//
// promtool comes with Debian's prometheus package (scripts/install-deps.sh).
// Without it the tests skip, except under CI=true, where they fail.
package rules

import (
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// File is a Prometheus rule file.
type File struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []Rule `yaml:"rules"`
	} `yaml:"groups"`
}

// Rule is an alerting or recording rule.
type Rule struct {
	Alert  string `yaml:"alert"`
	Record string `yaml:"record"`
	Expr   string `yaml:"expr"`
}

// Load reads a rule file.
func Load(path string) (File, error) {
	var f File
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("load rules: %w", err)
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("load rules %s: %w", filepath.Base(path), err)
	}
	return f, nil
}
