package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// WeedMetricsPrefix starts the names of SeaweedFS's own metrics.
const WeedMetricsPrefix = "SeaweedFS_"

// weedGatherer is a prometheus.Gatherer of the SeaweedFS_* families that
// the weed child serves on loopback (weed.metrics_listen), so that they
// are scraped with tunnelmesh-storage's own /metrics on the mesh address
// (one target, the service metrics-storage) and weed's port stays off the
// mesh. weed's Go and process series are left out: they would collide
// with tunnelmesh-storage's. While weed does not answer it adds nothing.
type weedGatherer struct {
	url string
	hc  *http.Client
	log *slog.Logger
}

func newWeedGatherer(addr string, log *slog.Logger) *weedGatherer {
	return &weedGatherer{url: "http://" + addr + "/metrics", hc: &http.Client{Timeout: 5 * time.Second}, log: log}
}

// Gather implements prometheus.Gatherer.
func (g *weedGatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := g.fetch()
	if err != nil {
		g.log.Debug("seaweedfs metrics", "err", err)
		return nil, nil
	}
	return fams, nil
}

func (g *weedGatherer) fetch() ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch seaweedfs metrics: %w", err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := g.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch seaweedfs metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch seaweedfs metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	all, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse seaweedfs metrics: %w", err)
	}
	var out []*dto.MetricFamily
	for name, f := range all {
		if strings.HasPrefix(name, WeedMetricsPrefix) {
			out = append(out, f)
		}
	}
	return out, nil
}
