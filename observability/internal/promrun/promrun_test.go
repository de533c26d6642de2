package promrun

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/observability/internal/catalog"
	"github.com/tunnelmesh/tunnelmesh/observability/internal/dash"
	"github.com/tunnelmesh/tunnelmesh/observability/internal/rules"
)

const scrapeToken = "tms1.0011223344556677.test-secret"

// sdGroup is one entry of an http_sd document.
type sdGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// fakeSD serves the registry's golden service discovery document, its
// targets replaced by loopback exporters, to bearers of scrapeToken.
type fakeSD struct {
	mu      sync.Mutex // guards groups and removed
	groups  []sdGroup
	removed map[string]bool // node names that left
}

func (f *fakeSD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+scrapeToken {
		http.Error(w, "scrape token required", http.StatusUnauthorized)
		return
	}
	only := r.URL.Query().Get("service")
	f.mu.Lock()
	out := []sdGroup{}
	for _, g := range f.groups {
		if (only == "" || g.Labels["service"] == only) && !f.removed[g.Labels["node"]] {
			out = append(out, g)
		}
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (f *fakeSD) remove(node string) {
	f.mu.Lock()
	f.removed[node] = true
	f.mu.Unlock()
}

// exposition renders one sample of every catalogue metric of the given
// subsystems, in the Prometheus text format, with the labels the
// dashboards group by.
func exposition(names []string, subsystems ...string) string {
	const labels = `peer="peer1",transport="udp",path="udp 192.0.2.7:51820",reason="filter_no_rule",rule="allow-ssh",result="ok",kind="admin",route="join",code="200",server="dns://:53",origin="mesh.",op="nfs.read",direction="in",stage="publish",action="start"`
	var b strings.Builder
	for _, n := range names {
		keep := false
		for _, s := range subsystems {
			if strings.HasPrefix(n, "tunnelmesh_"+s+"_") || (s == "process" && (strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_"))) {
				keep = true
			}
		}
		if !keep {
			continue
		}
		if strings.HasSuffix(n, "_bucket") {
			for _, le := range []string{"0.01", "0.1", "+Inf"} {
				fmt.Fprintf(&b, "%s{%s,le=%q} 3\n", n, labels, le)
			}
			continue
		}
		fmt.Fprintf(&b, "%s{%s} 1\n", n, labels)
	}
	return b.String()
}

func exporter(t *testing.T, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// api calls Prometheus's HTTP API and decodes data into v; it fails the
// test on a transport error or a non-success status.
func api(t *testing.T, base, path string, q url.Values, v any) error {
	t.Helper()
	u := base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, env.ErrorType, env.Error)
	}
	if v != nil {
		return json.Unmarshal(env.Data, v)
	}
	return nil
}

type target struct {
	Labels    map[string]string `json:"labels"`
	ScrapeURL string            `json:"scrapeUrl"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

func activeTargets(t *testing.T, base string) []target {
	t.Helper()
	var d struct {
		ActiveTargets []target `json:"activeTargets"`
	}
	if err := api(t, base, "/api/v1/targets", nil, &d); err != nil {
		t.Fatal(err)
	}
	return d.ActiveTargets
}

// waitFor polls cond every half second until it holds or the ceiling
// passes; it returns how long that took.
func waitFor(t *testing.T, ceiling time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > ceiling {
			t.Fatalf("%s: not after %v; last state:\n%s", what, ceiling, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestRealPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus not found: install Debian's prometheus package (scripts/install-deps.sh)")
		}
		t.Skip("prometheus not found: install Debian's prometheus package (scripts/install-deps.sh)")
	}
	root, err := catalog.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	names, err := catalog.Read(root)
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join(root, "registry/internal/server/testdata/sd.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var groups []sdGroup
	if err := json.Unmarshal(golden, &groups); err != nil {
		t.Fatal(err)
	}

	// The registry stand-in: HTTPS, service discovery and the registry's
	// own /metrics (with the coordinator's relay), as the real one.
	sd := &fakeSD{removed: map[string]bool{}}
	registryMetrics := exposition(names, "registry", "relay", "process")
	mux := http.NewServeMux()
	mux.Handle("/api/v1/sd/prometheus", sd)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, registryMetrics) })
	reg := httptest.NewTLSServer(mux)
	t.Cleanup(reg.Close)
	regHostPort := strings.TrimPrefix(reg.URL, "https://")

	services := map[string]bool{}
	for i, g := range groups {
		svc := g.Labels["service"]
		services[svc] = true
		g.Labels["mesh_id"] = "mesh-test"
		switch svc {
		case "registry":
			g.Targets = []string{regHostPort}
		case "agent":
			g.Targets = []string{strings.TrimPrefix(exporter(t, exposition(names, "agent", "process")).URL, "http://")}
		default:
			g.Targets = []string{strings.TrimPrefix(exporter(t, exposition(names, svc)).URL, "http://")}
		}
		groups[i] = g
	}
	sd.groups = groups
	for _, want := range []string{"agent", "meshdns", "relay", "registry", "storage", "nfsd", "dockerwatch"} {
		if !services[want] {
			t.Fatalf("the registry's golden SD document has no %s target", want)
		}
	}

	// The committed configuration, pointed at the stand-in and at files
	// in a temporary directory, on a one-second clock.
	dir := t.TempDir()
	secrets := filepath.Join(dir, "tunnelmesh")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "scrape.token"), []byte(scrapeToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: reg.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(secrets, "registry.crt"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	alerts, err := filepath.Abs("../../alerts")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile("../../prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer(
		"https://coordinator:8443", reg.URL,
		"/etc/prometheus/tunnelmesh/", secrets+"/",
		"/etc/prometheus/rules/", alerts+"/",
		"15s", "1s",
		"scrape_timeout: 10s", "scrape_timeout: 1s",
	).Replace(string(cfg))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	base := "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})

	// Every discovered target up.
	waitFor(t, 60*time.Second, "prometheus ready", func() (bool, string) {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	waitFor(t, 90*time.Second, "every target discovered and up", func() (bool, string) {
		ts := activeTargets(t, base)
		up := 0
		var state []string
		for _, tg := range ts {
			if tg.Health == "up" {
				up++
			}
			state = append(state, fmt.Sprintf("%s %s %s %s", tg.Labels["job"], tg.ScrapeURL, tg.Health, tg.LastError))
		}
		return len(ts) == len(groups) && up == len(groups), strings.Join(state, "\n")
	})
	t.Logf("%d targets up %v after prometheus started", len(groups), time.Since(started).Round(100*time.Millisecond))
	for _, tg := range activeTargets(t, base) {
		if tg.Labels["service"] == "" || tg.Labels["mesh_id"] != "mesh-test" || !strings.HasPrefix(tg.Labels["job"], "tunnelmesh-"+tg.Labels["service"]) {
			t.Errorf("target %s labels %v: want service, mesh_id and job tunnelmesh-<service>", tg.ScrapeURL, tg.Labels)
		}
		if tg.Labels["service"] == "registry" && !strings.HasPrefix(tg.ScrapeURL, "https://") {
			t.Errorf("registry scraped at %s, want https", tg.ScrapeURL)
		}
	}

	// The alert rules load and evaluate without error.
	rf, err := rules.Load(filepath.Join(alerts, "tunnelmesh.yml"))
	if err != nil {
		t.Fatal(err)
	}
	wantRules := 0
	for _, g := range rf.Groups {
		wantRules += len(g.Rules)
	}
	waitFor(t, 60*time.Second, "every alert rule loaded and evaluated", func() (bool, string) {
		var d struct {
			Groups []struct {
				Rules []struct {
					Name           string    `json:"name"`
					Health         string    `json:"health"`
					LastError      string    `json:"lastError"`
					LastEvaluation time.Time `json:"lastEvaluation"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := api(t, base, "/api/v1/rules", nil, &d); err != nil {
			return false, err.Error()
		}
		n, ok := 0, 0
		var state []string
		for _, g := range d.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health == "ok" && !r.LastEvaluation.IsZero() {
					ok++
				}
				state = append(state, fmt.Sprintf("%s %s %s", r.Name, r.Health, r.LastError))
			}
		}
		return n == wantRules && ok == n, strings.Join(state, "\n")
	})

	// Every dashboard query evaluates; every variable finds values.
	paths, err := filepath.Glob("../../" + dash.DashboardsDir + "/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no dashboards (%v)", err)
	}
	queries := 0
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
				checkVariable(t, base, filepath.Base(p), e)
				continue
			}
			queries++
			q := url.Values{"query": {dash.Concrete(e.PromQL)}}
			if err := api(t, base, "/api/v1/query", q, nil); err != nil {
				t.Errorf("%s: %s: %q: %v", filepath.Base(p), e.Panel, e.PromQL, err)
			}
			end := time.Now()
			qr := url.Values{"query": {dash.Concrete(e.PromQL)}, "start": {fmt.Sprint(end.Add(-5 * time.Minute).Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"15"}}
			if err := api(t, base, "/api/v1/query_range", qr, nil); err != nil {
				t.Errorf("%s: %s: range %q: %v", filepath.Base(p), e.Panel, e.PromQL, err)
			}
		}
	}
	// A query Prometheus refuses is reported: the check above can fail.
	if err := api(t, base, "/api/v1/query", url.Values{"query": {"sum(rate(tunnelmesh_agent_rx_bytes_total[5m])"}}, nil); err == nil {
		t.Error("an unbalanced query evaluated without error")
	}
	t.Logf("%d dashboard queries evaluated", queries)

	// A node that leaves disappears from the targets without a reload.
	sd.remove("node1")
	waitFor(t, 60*time.Second, "node1's target gone after it left", func() (bool, string) {
		var nodes []string
		for _, tg := range activeTargets(t, base) {
			nodes = append(nodes, tg.Labels["node"])
		}
		sort.Strings(nodes)
		for _, n := range nodes {
			if n == "node1" {
				return false, strings.Join(nodes, ",")
			}
		}
		return len(nodes) == len(groups)-1, strings.Join(nodes, ",")
	})
}

// checkVariable runs a label_values(METRIC, LABEL) variable as Grafana
// does (the series API) and expects values.
func checkVariable(t *testing.T, base, file string, e dash.Expr) {
	t.Helper()
	inner, ok := strings.CutPrefix(dash.Concrete(e.PromQL), "label_values(")
	inner, ok2 := strings.CutSuffix(inner, ")")
	i := strings.LastIndex(inner, ",")
	if !ok || !ok2 || i < 0 {
		t.Errorf("%s: %s: %q is not label_values(METRIC, LABEL)", file, e.Panel, e.PromQL)
		return
	}
	match, label := strings.TrimSpace(inner[:i]), strings.TrimSpace(inner[i+1:])
	var series []map[string]string
	if err := api(t, base, "/api/v1/series", url.Values{"match[]": {match}}, &series); err != nil {
		t.Errorf("%s: %s: %v", file, e.Panel, err)
		return
	}
	for _, s := range series {
		if s[label] != "" {
			return
		}
	}
	t.Errorf("%s: %s: no series of %s has label %s", file, e.Panel, match, label)
}
