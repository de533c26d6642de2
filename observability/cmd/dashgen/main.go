// Command dashgen writes TunnelMesh's Grafana dashboards (JSON) and Grafana
// provisioning files under -out (the observability directory):
//
//	cd observability && go run ./cmd/dashgen -out .
//
// or `go generate ./...` in the observability module.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/tunnelmesh/tunnelmesh/observability/internal/dash"
)

func main() {
	out := flag.String("out", ".", "output root: dashboards/ and grafana/provisioning/ are written under it")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "dashgen:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	files, err := dash.Files()
	if err != nil {
		return err
	}
	// Dashboards the generator does not produce must not linger in the directory.
	old, err := filepath.Glob(filepath.Join(root, dash.DashboardsDir, "*.json"))
	if err != nil {
		return fmt.Errorf("list old dashboards: %w", err)
	}
	for _, f := range old {
		rel, _ := filepath.Rel(root, f)
		if _, keep := files[filepath.ToSlash(rel)]; !keep {
			if err := os.Remove(f); err != nil {
				return fmt.Errorf("remove old dashboard: %w", err)
			}
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		fmt.Println(p)
	}
	return nil
}
