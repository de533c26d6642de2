package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestWeedMetricsMerged: storage's /metrics carries SeaweedFS's own
// SeaweedFS_* series read from weed's loopback endpoint, not weed's Go and
// process series (they would collide with storage's), and still answers
// when weed does not.
func TestWeedMetricsMerged(t *testing.T) {
	weed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "# TYPE SeaweedFS_s3_request_total counter\nSeaweedFS_s3_request_total{type=\"PUT\",code=\"200\"} 7\n"+
			"# TYPE go_goroutines gauge\ngo_goroutines 99\n")
	}))
	defer weed.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	scrape := func(addr string) string {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector())
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "tunnelmesh_storage_weed_restarts_total", Help: "x"})
		reg.MustRegister(c)
		h := promhttp.HandlerFor(prometheus.Gatherers{reg, newWeedGatherer(addr, log)}, promhttp.HandlerOpts{})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Body)
		}
		return rec.Body.String()
	}

	body := scrape(strings.TrimPrefix(weed.URL, "http://"))
	if !strings.Contains(body, `SeaweedFS_s3_request_total{code="200",type="PUT"} 7`) {
		t.Errorf("merged /metrics lacks SeaweedFS_s3_request_total:\n%s", body)
	}
	if !strings.Contains(body, "tunnelmesh_storage_weed_restarts_total 0") {
		t.Errorf("merged /metrics lacks storage's own series:\n%s", body)
	}
	if strings.Contains(body, "go_goroutines 99") {
		t.Errorf("merged /metrics has weed's go_goroutines:\n%s", body)
	}

	weed.Close()
	body = scrape(strings.TrimPrefix(weed.URL, "http://"))
	if strings.Contains(body, "SeaweedFS_") || !strings.Contains(body, "tunnelmesh_storage_weed_restarts_total 0") {
		t.Errorf("with weed down, /metrics =\n%s\nwant storage's series only", body)
	}
}
