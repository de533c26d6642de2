package reconcile

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricNames pins the metric names the README lists.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.Events.WithLabelValues("start").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	want := []string{
		"tunnelmesh_dockerwatch_containers_skipped",
		"tunnelmesh_dockerwatch_event_stream_up",
		"tunnelmesh_dockerwatch_events_total",
		"tunnelmesh_dockerwatch_reconcile_errors_total",
		"tunnelmesh_dockerwatch_reconciles_total",
		"tunnelmesh_dockerwatch_services_exposed",
	}
	if !slices.Equal(got, want) {
		t.Errorf("metrics = %v, want %v", got, want)
	}
}
