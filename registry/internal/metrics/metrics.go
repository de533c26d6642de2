// Package metrics holds the registry's Prometheus metrics (namespace
// tunnelmesh, subsystem registry).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

const (
	namespace = "tunnelmesh"
	subsystem = "registry"
)

// Join results, the values of the joins_total "result" label.
const (
	JoinOK           = "ok"
	JoinTokenInvalid = "token_invalid"
	JoinConflict     = "conflict"
	JoinRangeFull    = "range_full"
	JoinBadRequest   = "bad_request"
	JoinProofInvalid = "proof_invalid" // signature by the node key missing, stale, replayed or wrong
	JoinRateLimited  = "rate_limited"
	JoinError        = "error"
)

// Netmap answer kinds, the values of the netmap_answers_total "kind" label.
const (
	NetmapFull  = "full"
	NetmapDelta = "delta"
)

// Snapshot reload kinds, the values of the netmap_reloads_total "kind"
// label: every node read from the store, or the one node a change touched.
const (
	ReloadAll  = "all"
	ReloadNode = "node"
)

// Metrics are the registry's collectors.
type Metrics struct {
	Nodes           prometheus.Gauge
	NodesOnline     prometheus.Gauge
	NetmapVersion   prometheus.Gauge
	Watchers        prometheus.Gauge
	NetmapAnswers   *prometheus.CounterVec
	NetmapReloads   *prometheus.CounterVec
	Joins           *prometheus.CounterVec
	RequestDuration *prometheus.HistogramVec
	AuthFailures    *prometheus.CounterVec
	STUNRequests    *prometheus.CounterVec
}

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Nodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "nodes",
			Help: "Registered nodes.",
		}),
		NodesOnline: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "nodes_online",
			Help: "Registered nodes heard from within the online timeout.",
		}),
		NetmapVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "netmap_version",
			Help: "Current mesh version (netmap change counter).",
		}),
		Watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "watchers",
			Help: "Netmap long-poll requests currently waiting.",
		}),
		NetmapAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "netmap_answers_total",
			Help: "Netmaps sent to watchers by kind (full, delta).",
		}, []string{"kind"}),
		NetmapReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "netmap_reloads_total",
			Help: "Snapshots of the mesh rebuilt after a change, by what was read from the store (all nodes, or the one node the change touched).",
		}, []string{"kind"}),
		Joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "joins_total",
			Help: "Join attempts by result.",
		}, []string{"result"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "request_duration_seconds",
			Help:    "API request latency by route and status code (netmap watches include their wait).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "code"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "auth_failures_total",
			Help: "Refused node or admin authentications by kind.",
		}, []string{"kind"}),
		STUNRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "stun_requests_total",
			Help: "STUN packets by result (ok, malformed, unknown_attribute).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.Nodes, m.NodesOnline, m.NetmapVersion, m.Watchers, m.NetmapAnswers, m.NetmapReloads, m.Joins, m.RequestDuration, m.AuthFailures, m.STUNRequests} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, k := range []string{NetmapFull, NetmapDelta} {
		m.NetmapAnswers.WithLabelValues(k)
	}
	for _, k := range []string{ReloadAll, ReloadNode} {
		m.NetmapReloads.WithLabelValues(k)
	}
	for _, r := range []string{JoinOK, JoinTokenInvalid, JoinConflict, JoinRangeFull, JoinBadRequest, JoinProofInvalid, JoinRateLimited, JoinError} {
		m.Joins.WithLabelValues(r)
	}
	return m, nil
}
