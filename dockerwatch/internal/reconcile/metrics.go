package reconcile

import "github.com/prometheus/client_golang/prometheus"

// Metrics are dockerwatch's Prometheus metrics (namespace tunnelmesh,
// subsystem dockerwatch).
type Metrics struct {
	Events          *prometheus.CounterVec
	Reconciles      prometheus.Counter
	ReconcileErrors *prometheus.CounterVec
	Exposed         prometheus.Gauge
	Skipped         prometheus.Gauge
	StreamUp        prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (none when
// reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	o := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "tunnelmesh", Subsystem: "dockerwatch", Name: name, Help: help}
	}
	m := &Metrics{
		Events:          prometheus.NewCounterVec(prometheus.CounterOpts(o("events_total", "Container events received from the engine, by action.")), []string{"action"}),
		Reconciles:      prometheus.NewCounter(prometheus.CounterOpts(o("reconciles_total", "Full resyncs from the container list."))),
		ReconcileErrors: prometheus.NewCounterVec(prometheus.CounterOpts(o("reconcile_errors_total", "Failed resyncs, by stage (list, agent, forward, publish).")), []string{"stage"}),
		Exposed:         prometheus.NewGauge(prometheus.GaugeOpts(o("services_exposed", "Ports forwarded to containers now."))),
		Skipped:         prometheus.NewGauge(prometheus.GaugeOpts(o("containers_skipped", "Containers that asked to be exposed and are not (see the log for why)."))),
		StreamUp:        prometheus.NewGauge(prometheus.GaugeOpts(o("event_stream_up", "1 while the engine's event stream is open."))),
	}
	for _, s := range []string{"list", "agent", "forward", "publish"} {
		m.ReconcileErrors.WithLabelValues(s)
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Reconciles, m.ReconcileErrors, m.Exposed, m.Skipped, m.StreamUp)
	}
	return m
}
