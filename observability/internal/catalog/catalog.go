// Package catalog lists the Prometheus metrics TunnelMesh's components
// export, read from the components' own source files, so that the
// dashboards and alert rules can be checked against what really exists
// (a misspelt metric gives an empty panel or an alert that never fires).
//
// Sources names each file that defines tunnelmesh_* metrics and the module
// subsystem its names carry. Read extracts the short names from the
// constructor calls those files use (Name: "x", desc("x", ...),
// c("x", ...), o("x", ...), opts("x", ...), BuildFQName(ns, sub, "x")); a histogram
// (NewHistogram, NewHistogramVec, or the agent's const histograms declared
// with histDesc("x", ...)) yields its _bucket, _sum and _count series
// instead. The Go runtime and process collectors' series that
// the dashboards use, and Prometheus's own up, are listed in Builtin.
package catalog

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Source is a file of the repository that defines metrics of one
// subsystem (tunnelmesh_<Subsystem>_*).
type Source struct {
	Path      string // relative to the repository root
	Subsystem string
}

// Sources are the files that define every tunnelmesh_* metric. sshgw
// exports none. SeaweedFS's own SeaweedFS_* series, which
// tunnelmesh-storage adds to its /metrics when weed.metrics_listen is set,
// are not defined here and are not listed.
var Sources = []Source{
	{"agent/internal/node/metrics.go", "agent"},
	{"registry/internal/metrics/metrics.go", "registry"},
	{"relay/server/metrics.go", "relay"},
	{"meshdns/metrics.go", "meshdns"},
	{"registry/coordinator/sd.go", "registry"},
	{"registry/internal/scrapecred/metrics.go", "registry"},
	{"storage/internal/issuer/metrics.go", "storage"},
	{"storage/internal/server/server.go", "storage"},
	{"nfsd/internal/server/metrics.go", "nfsd"},
	{"dockerwatch/internal/reconcile/metrics.go", "dockerwatch"},
}

// Builtin are series that exist without a tunnelmesh definition: the
// scrape's up, and the Go and process collectors the agent, registry and
// relay register (client_golang's names).
var Builtin = []string{
	"up",
	"go_goroutines",
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
	"process_open_fds",
}

var (
	nameRE      = regexp.MustCompile(`(?:\bName:\s*|\bdesc\(|\bc\(|\bo\(|\bopts\(|\bBuildFQName\([^,()]+,[^,()]+,\s*)"([a-z][a-z0-9_]*)"`)
	histogramRE = regexp.MustCompile(`(?s)NewHistogram(?:Vec)?\(prometheus\.HistogramOpts\{.*?Name:\s*"([a-z][a-z0-9_]*)"|\bhistDesc\("([a-z][a-z0-9_]*)"`)
)

// Read returns every metric name the sources under root define, plus
// Builtin, sorted.
func Read(root string) ([]string, error) {
	set := make(map[string]bool)
	for _, n := range Builtin {
		set[n] = true
	}
	for _, src := range Sources {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(src.Path)))
		if err != nil {
			return nil, fmt.Errorf("read metrics of %s: %w", src.Subsystem, err)
		}
		prefix := "tunnelmesh_" + src.Subsystem + "_"
		found := 0
		for _, m := range nameRE.FindAllStringSubmatch(string(b), -1) {
			set[prefix+m[1]] = true
			found++
		}
		for _, m := range histogramRE.FindAllStringSubmatch(string(b), -1) {
			name := m[1] + m[2]
			found++
			delete(set, prefix+name) // a histogram has no series of its own name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				set[prefix+name+suffix] = true
			}
		}
		if found == 0 {
			return nil, fmt.Errorf("read metrics of %s: no metric definitions in %s", src.Subsystem, src.Path)
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// metricTokenRE matches what looks like a metric name in PromQL: our own,
// the builtins' families, and up. Label names, label values (inside
// quotes) and functions do not match these prefixes.
var metricTokenRE = regexp.MustCompile(`\b(?:tunnelmesh_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+|up)\b`)

// quotedRE matches PromQL string literals, removed before looking for
// metric names so that a label value never counts as one.
var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)

// Names returns the metric names an expression uses.
func Names(promql string) []string {
	stripped := quotedRE.ReplaceAllString(promql, `""`)
	var out []string
	seen := make(map[string]bool)
	for _, n := range metricTokenRE.FindAllString(stripped, -1) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Missing returns the names used by promql that are not in known.
func Missing(known []string, promql string) []string {
	set := make(map[string]bool, len(known))
	for _, n := range known {
		set[n] = true
	}
	var out []string
	for _, n := range Names(promql) {
		if !set[n] {
			out = append(out, n)
		}
	}
	return out
}

// RepoRoot returns the repository root above dir (the directory that holds
// go.work), for tests that run inside the observability module.
func RepoRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("find repository root: no go.work above %s", dir)
		}
		d = parent
	}
}

// Describe formats names one per line, for failure messages.
func Describe(names []string) string { return strings.Join(names, "\n") }
