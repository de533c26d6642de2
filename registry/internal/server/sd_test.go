package server

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/scrapecred"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata golden files")

// newSDServer is a test server with service discovery on and one scrape
// token, which it returns.
func newSDServer(t *testing.T, clock *fakeClock) (*Server, *scrapeEnv) {
	t.Helper()
	s, _ := newTestServer(t, clock, openPolicy{})
	creds, err := scrapecred.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := creds.Create("prometheus", 0, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.EnableServiceDiscovery(SDSettings{Credentials: creds, RegistryTarget: "coordinator:8443"})
	return s, &scrapeEnv{token: tok}
}

type scrapeEnv struct{ token string }

func sdGet(t *testing.T, s *Server, auth, query string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, scrapecred.PathSD+query, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func TestSDDocumentGolden(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	s, env := newSDServer(t, clock)
	ctx := context.Background()
	st := s.st
	addNode(t, s, st, "node1", []string{"web", "eu"}, clock.Now())
	dns := addNode(t, s, st, "dns", []string{"dns"}, clock.Now())
	// The DNS node publishes DNS (meshdns on the default port) and its
	// agent's metrics on another port than the default.
	_, err := st.SetServices(ctx, dns.ID, []api.Service{
		{Name: api.ServiceDNS, Protocol: "udp", Port: 53},
		{Name: "metrics-agent", Protocol: "tcp", Port: 9200},
	})
	if err != nil {
		t.Fatal(err)
	}
	relayNode := addNode(t, s, st, "relay1", nil, clock.Now())
	if _, err := st.SetServices(ctx, relayNode.ID, []api.Service{{Name: "metrics-relay", Protocol: "tcp", Port: 9102}}); err != nil {
		t.Fatal(err)
	}
	// A storage and NFS node (the agent's --advertise-storage and
	// --advertise-nfs) and a node running dockerwatch (its own service set,
	// published through the agent's local API).
	files := addNode(t, s, st, "files", []string{"storage", "nfs"}, clock.Now())
	if _, err := st.SetServices(ctx, files.ID, []api.Service{
		{Name: api.ServiceStorage, Protocol: "tcp", Port: api.StorageS3Port},
		{Name: api.ServiceStorageAuth, Protocol: "tcp", Port: api.StorageAuthPort},
		{Name: api.ServiceMetricsStorage, Protocol: "tcp", Port: api.StorageMetricsPort},
		{Name: api.ServiceNFS, Protocol: "tcp", Port: 2049},
		{Name: api.ServiceMetricsNFSD, Protocol: "tcp", Port: api.NFSDMetricsPort},
	}); err != nil {
		t.Fatal(err)
	}
	docker := addNode(t, s, st, "docker1", nil, clock.Now())
	v, err := st.SetServices(ctx, docker.ID, []api.Service{
		{Name: "web", Protocol: "tcp", Port: 8080, Owner: api.ServiceOwnerDocker},
		{Name: api.ServiceMetricsDockerwatch, Protocol: "tcp", Port: api.DockerwatchMetricsPort, Owner: api.ServiceOwnerDocker},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.refresh(ctx, v); err != nil {
		t.Fatal(err)
	}

	rec := sdGet(t, s, "Bearer "+env.token, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET sd = %d %s, want 200", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, rec.Body.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	got := strings.ReplaceAll(pretty.String(), s.set.Mesh.ID, "MESH-ID") + "\n"
	golden := filepath.Join("testdata", "sd.golden.json")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("GET sd =\n%s\nwant (%s)\n%s", got, golden, want)
	}

	// ?service= keeps one component.
	var groups []SDGroup
	rec = sdGet(t, s, "Bearer "+env.token, "?service=meshdns")
	if err := json.Unmarshal(rec.Body.Bytes(), &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Labels[LabelNode] != "dns" || groups[0].Targets[0] != dns.IP.String()+":9153" {
		t.Errorf("GET sd?service=meshdns = %+v, want the dns node's meshdns at :9153", groups)
	}
}

func TestSDRefusesWithoutScrapeToken(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	s, env := newSDServer(t, clock)
	addNode(t, s, s.st, "node1", nil, clock.Now())
	for name, auth := range map[string]string{
		"none":             "",
		"wrong token":      "Bearer " + env.token[:len(env.token)-3] + "abc",
		"admin credential": "Bearer admin-credential-0123456789",
		"basic scheme":     "Basic " + env.token,
		"token alone":      env.token,
	} {
		t.Run(name, func(t *testing.T) {
			rec := sdGet(t, s, auth, "")
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("GET sd = %d, want 401", rec.Code)
			}
			if strings.Contains(rec.Body.String(), "node1") {
				t.Errorf("refused answer leaks targets: %s", rec.Body)
			}
		})
	}
	if rec := sdGet(t, s, "Bearer "+env.token, ""); rec.Code != http.StatusOK {
		t.Fatalf("GET sd with the token = %d, want 200", rec.Code)
	}
}

func TestSDFollowsJoinsAndLeaves(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	s, env := newSDServer(t, clock)
	ctx := context.Background()
	nodes := func() []string {
		var groups []SDGroup
		rec := sdGet(t, s, "Bearer "+env.token, "?service=agent")
		if err := json.Unmarshal(rec.Body.Bytes(), &groups); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, g := range groups {
			out = append(out, g.Labels[LabelNode])
		}
		return out
	}
	if got := nodes(); len(got) != 0 {
		t.Fatalf("agents before any join = %v, want none", got)
	}
	addNode(t, s, s.st, "node1", nil, clock.Now())
	addNode(t, s, s.st, "node2", nil, clock.Now())
	if got := strings.Join(nodes(), ","); got != "node1,node2" {
		t.Fatalf("agents after two joins = %s, want node1,node2", got)
	}
	_, v, err := s.st.RemoveNode(ctx, "node1", clock.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.refresh(ctx, v); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(nodes(), ","); got != "node2" {
		t.Fatalf("agents after node1 left = %s, want node2", got)
	}
}

func TestScrapeTokenAdminAPI(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	s, _ := newSDServer(t, clock)
	do := func(method, path, auth, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec
	}
	const admin = "admin-credential-0123456789"
	if rec := do(http.MethodPost, scrapecred.PathAdmin, "", `{"name":"x"}`); rec.Code != http.StatusUnauthorized {
		t.Fatalf("create without admin credential = %d, want 401", rec.Code)
	}
	rec := do(http.MethodPost, scrapecred.PathAdmin, admin, `{"name":"prom","expiry":"1h"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create = %d %s, want 201", rec.Code, rec.Body)
	}
	var created scrapecred.CreateResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil {
		t.Fatal(err)
	}
	// A scrape token is not an admin credential.
	if rec := do(http.MethodGet, scrapecred.PathAdmin, created.Token, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("list with a scrape token = %d, want 401", rec.Code)
	}
	if rec := sdGet(t, s, "Bearer "+created.Token, ""); rec.Code != http.StatusOK {
		t.Fatalf("sd with the new token = %d, want 200", rec.Code)
	}
	clock.Add(time.Hour)
	if rec := sdGet(t, s, "Bearer "+created.Token, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("sd with an expired token = %d, want 401", rec.Code)
	}
	if rec := do(http.MethodDelete, scrapecred.PathAdmin+"/"+created.Info.ID, admin, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("revoke = %d %s, want 204", rec.Code, rec.Body)
	}
	if rec := do(http.MethodDelete, scrapecred.PathAdmin+"/"+created.Info.ID, admin, ""); rec.Code != http.StatusNotFound {
		t.Fatalf("revoke twice = %d, want 404", rec.Code)
	}
	if rec := do(http.MethodPost, scrapecred.PathAdmin, admin, `{"expiry":"-1h"}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("create with negative expiry = %d, want 400", rec.Code)
	}
}
