package promrun

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/observability/internal/catalog"
	"github.com/tunnelmesh/tunnelmesh/observability/internal/dash"
	"github.com/tunnelmesh/tunnelmesh/observability/internal/rules"
)

// EnvLive names the Prometheus that TestLiveMesh checks: the compose
// monitoring profile's (http://127.0.0.1:9090), scraping a real mesh.
const EnvLive = "TUNNELMESH_PROMETHEUS_URL"

// lazyMetrics are vectors that have no series until their first event
// (no label values are created in advance): a live mesh with no DNS query,
// no registry error, no refused authentication and no TCP connection does
// not export them.
var lazyMetrics = map[string]string{
	"tunnelmesh_meshdns_queries_total":                          "the first query for a mesh name",
	"tunnelmesh_meshdns_registry_errors_total":                  "the first failed netmap watch",
	"tunnelmesh_registry_auth_failures_total":                   "the first refused authentication",
	"tunnelmesh_registry_stun_requests_total":                   "the first STUN packet",
	"tunnelmesh_agent_filter_accepts_total":                     "the first packet a rule accepts",
	"tunnelmesh_registry_scrape_token_expiry_timestamp_seconds": "the first scrape token with an expiry (the bootstrap token has none)",
	"tunnelmesh_agent_peer_tcp_handshake_seconds_bucket":        "the first TCP connection a node opens through the mesh",
	"tunnelmesh_agent_peer_tcp_handshake_seconds_count":         "the first TCP connection a node opens through the mesh",
	"tunnelmesh_storage_credentials_refused_total":              "the first refused credential request",
	"tunnelmesh_nfsd_refused_connections_total":                 "the first connection the identity check refuses",
	"tunnelmesh_nfsd_mounts_total":                              "the first MOUNT request",
	"tunnelmesh_nfsd_ops_total":                                 "the first NFS request",
	"tunnelmesh_dockerwatch_events_total":                       "the first container event",
}

// optionalServices are components a mesh may not run: their metrics are
// checked only when the registry lists at least one of their targets.
var optionalServices = []string{"storage", "nfsd", "dockerwatch"}

// absentService returns the optional component whose metric n is, when
// the live mesh has no target of it ("" otherwise).
func absentService(n string, services map[string]int) string {
	for _, s := range optionalServices {
		if strings.HasPrefix(n, "tunnelmesh_"+s+"_") && services[s] == 0 {
			return s
		}
	}
	return ""
}

// TestLiveMesh checks a real mesh through its Prometheus: every target the
// registry lists is up within 60 s, every alert rule is loaded and
// healthy, every dashboard query evaluates, and every metric a panel or
// alert uses has series scraped from the real components (except the few
// that appear only after their first event). It runs when EnvLive is set.
func TestLiveMesh(t *testing.T) {
	base := strings.TrimSuffix(os.Getenv(EnvLive), "/")
	if base == "" {
		t.Skip(EnvLive + " not set: start the compose monitoring profile and point it at its Prometheus")
	}
	waitFor(t, 60*time.Second, "every discovered target up", func() (bool, string) {
		ts := activeTargets(t, base)
		var state []string
		up := 0
		for _, tg := range ts {
			if tg.Health == "up" {
				up++
			}
			state = append(state, fmt.Sprintf("%s %s %s %s", tg.Labels["job"], tg.ScrapeURL, tg.Health, tg.LastError))
		}
		return len(ts) > 0 && up == len(ts), strings.Join(state, "\n")
	})
	services := map[string]int{}
	for _, tg := range activeTargets(t, base) {
		services[tg.Labels["service"]]++
	}
	for _, s := range []string{"agent", "registry"} {
		if services[s] == 0 {
			t.Errorf("no %s target discovered; got %v", s, services)
		}
	}
	t.Logf("targets up: %v", services)

	rf, err := rules.Load("../../alerts/tunnelmesh.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rd struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := api(t, base, "/api/v1/rules", nil, &rd); err != nil {
		t.Fatal(err)
	}
	loaded := map[string]bool{}
	for _, g := range rd.Groups {
		for _, r := range g.Rules {
			loaded[r.Name] = true
			if r.Health == "err" {
				t.Errorf("rule %s: %s", r.Name, r.LastError)
			}
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if !loaded[r.Alert] {
				t.Errorf("alert %s is not loaded in %s", r.Alert, base)
			}
		}
	}

	var have []string
	if err := api(t, base, "/api/v1/label/__name__/values", nil, &have); err != nil {
		t.Fatal(err)
	}
	haveSet := map[string]bool{}
	for _, n := range have {
		haveSet[n] = true
	}
	checkNames := func(where, promql string) {
		for _, n := range catalog.Names(promql) {
			if absentService(n, services) != "" {
				continue
			}
			if !haveSet[n] && lazyMetrics[n] == "" {
				t.Errorf("%s: %s has no series in the live mesh", where, n)
			}
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			checkNames("alert "+r.Alert, r.Expr)
		}
	}
	paths, _ := filepath.Glob("../../" + dash.DashboardsDir + "/*.json")
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
			where := filepath.Base(p) + ": " + e.Panel
			checkNames(where, e.PromQL)
			if e.Variable {
				checkVariable(t, base, filepath.Base(p), e)
				continue
			}
			if err := api(t, base, "/api/v1/query", url.Values{"query": {dash.Concrete(e.PromQL)}}, nil); err != nil {
				t.Errorf("%s: %q: %v", where, e.PromQL, err)
			}
		}
	}
	for _, sv := range optionalServices {
		if services[sv] == 0 {
			t.Logf("no %s target in this mesh: its metrics are not checked", sv)
		}
	}
	for n, first := range lazyMetrics {
		if !haveSet[n] {
			t.Logf("%s not exported yet (appears with %s)", n, first)
		}
	}
}

func TestAbsentService(t *testing.T) {
	services := map[string]int{"agent": 3, "registry": 1, "nfsd": 1}
	for n, want := range map[string]string{
		"tunnelmesh_storage_credentials_issued_total":   "storage",
		"tunnelmesh_dockerwatch_services_exposed":       "dockerwatch",
		"tunnelmesh_nfsd_mounts_total":                  "",
		"tunnelmesh_agent_peers":                        "",
		"tunnelmesh_registry_scrape_token_expiry_total": "",
	} {
		if got := absentService(n, services); got != want {
			t.Errorf("absentService(%s) = %q, want %q", n, got, want)
		}
	}
}
