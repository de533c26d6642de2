package scrapecred

import "github.com/prometheus/client_golang/prometheus"

var descExpiry = prometheus.NewDesc(
	prometheus.BuildFQName("tunnelmesh", "registry", "scrape_token_expiry_timestamp_seconds"),
	"Unix time at which each scrape token with an expiry stops working.",
	[]string{"id", "name"}, nil)

// Collector exports the expiry of every scrape token that has one, read
// at scrape time.
func (s *Store) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Store }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- descExpiry }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, in := range c.s.List() {
		if in.ExpiresAt.IsZero() {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, float64(in.ExpiresAt.Unix()), in.ID, in.Name)
	}
}
