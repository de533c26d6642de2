package issuer

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the tunnelmesh_storage_credentials_* counters.
type Metrics struct {
	Issued  prometheus.Counter
	Refused *prometheus.CounterVec
	Revoked prometheus.Counter
}

// NewMetrics creates the counters and registers them with reg (when not
// nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Issued: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "tunnelmesh", Subsystem: "storage", Name: "credentials_issued_total",
			Help: "Credential requests answered with a node's S3 credentials.",
		}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "tunnelmesh", Subsystem: "storage", Name: "credentials_refused_total",
			Help: "Credential requests refused, by reason (malformed, not_member, bad_signature, stale, replayed).",
		}, []string{"reason"}),
		Revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "tunnelmesh", Subsystem: "storage", Name: "credentials_revoked_total",
			Help: "Node credentials revoked because the node left the netmap or changed key.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Issued, m.Refused, m.Revoked)
	}
	return m
}
