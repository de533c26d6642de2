package dash

//lint:file-ignore SA1019 the v1 dashboard schema is the one every Grafana imports by file provisioning; dashboardv2 needs Grafana 12 with a feature flag.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/tunnelmesh/tunnelmesh/observability/internal/catalog"
)

// outRoot is the observability directory, where the generator's output is
// committed.
const outRoot = "../.."

// sdkErr turns the SDK's typed error results into a plain error: its
// Validate and UnmarshalJSONStrict return an empty cog.BuildErrors (a
// non-nil interface) on success.
func sdkErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

func TestCommittedMatchesGenerator(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(outRoot, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("%s: %v (run `go generate ./...` in observability)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator's output (run `go generate ./...` in observability)", name)
		}
	}
	committed, err := filepath.Glob(filepath.Join(outRoot, DashboardsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range committed {
		if _, ok := files[DashboardsDir+"/"+filepath.Base(f)]; !ok {
			t.Errorf("%s is committed but not generated", f)
		}
	}
}

func committedDashboards(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(outRoot, DashboardsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 10 {
		t.Fatalf("%d dashboards committed, want 10", len(paths))
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func TestCommittedPassStrictUnmarshalAndValidate(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for name, b := range committedDashboards(t) {
		t.Run(name, func(t *testing.T) {
			var d dashboard.Dashboard
			if err := sdkErr(d.UnmarshalJSONStrict(b)); err != nil {
				t.Fatalf("UnmarshalJSONStrict: %v", err)
			}
			if err := sdkErr(d.Validate()); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if d.Uid == nil || !strings.HasPrefix(*d.Uid, "tunnelmesh-") {
				t.Errorf("uid = %v, want tunnelmesh-*", d.Uid)
			}
		})
	}
}

// TestStrictUnmarshalRefusesUnknownField proves the strict check above can
// fail: a field the schema does not know is an error.
func TestStrictUnmarshalRefusesUnknownField(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	b := committedDashboards(t)["relay.json"]
	bad := bytes.Replace(b, []byte(`"title": "TunnelMesh / Relay"`), []byte(`"title": "TunnelMesh / Relay", "titel": "x"`), 1)
	var d dashboard.Dashboard
	if err := sdkErr(d.UnmarshalJSONStrict(bad)); err == nil {
		t.Fatal("UnmarshalJSONStrict accepted an unknown field")
	}
}

func TestUniquePanelIDsAndUIDs(t *testing.T) {
	ds, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	uids := make(map[string]string)
	for name, d := range ds {
		if prev, dup := uids[*d.Uid]; dup {
			t.Errorf("uid %s used by %s and %s", *d.Uid, prev, name)
		}
		uids[*d.Uid] = name
		ids := make(map[uint32]bool)
		for _, p := range d.Panels {
			var id *uint32
			switch {
			case p.Panel != nil:
				id = p.Panel.Id
			case p.RowPanel != nil:
				id = &p.RowPanel.Id
			}
			if id == nil || *id == 0 || ids[*id] {
				t.Errorf("%s: panel id %v missing or used twice", name, id)
				continue
			}
			ids[*id] = true
		}
	}
}

// TestMetricNamesExist checks every metric a panel or variable uses against
// the metrics the components define (package catalog), so no panel is
// empty because of a misspelt name.
func TestMetricNamesExist(t *testing.T) {
	root, err := catalog.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	known, err := catalog.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for name, b := range committedDashboards(t) {
		exprs, err := Expressions(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, e := range exprs {
			total++
			if len(catalog.Names(e.PromQL)) == 0 {
				t.Errorf("%s: %s: %q uses no metric", name, e.Panel, e.PromQL)
			}
			if miss := catalog.Missing(known, e.PromQL); len(miss) > 0 {
				sort.Strings(miss)
				t.Errorf("%s: %s: %q uses metrics no component exports: %v", name, e.Panel, e.PromQL, miss)
			}
		}
	}
	if total < 50 {
		t.Errorf("%d expressions in the dashboards, want at least 50", total)
	}
}
