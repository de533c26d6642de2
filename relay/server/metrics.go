package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the values of the "reason" label of drops_total.
const (
	dropNoPeer     = "no_peer"     // destination not connected to this relay
	dropQueueFull  = "queue_full"  // destination's send queue full (slow consumer)
	dropMalformed  = "malformed"   // not a valid packet message
	dropWriteError = "write_error" // writing to the destination failed
	dropClosed     = "closed"      // still queued when the destination disconnected
)

type metrics struct {
	connections     prometheus.Gauge
	handshakes      *prometheus.CounterVec
	framesForwarded prometheus.Counter
	bytesForwarded  prometheus.Counter
	drops           map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "tunnelmesh", Subsystem: "relay", Name: name, Help: help}
	}
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts(opts("connections",
			"Nodes connected to the relay."))),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts(opts("handshakes_total",
			"Connection handshakes by result (ok, bad_auth, unauthorized, io_error, bad_request, error).")), []string{"result"}),
		framesForwarded: prometheus.NewCounter(prometheus.CounterOpts(opts("frames_forwarded_total",
			"Frames written to their destination node."))),
		bytesForwarded: prometheus.NewCounter(prometheus.CounterOpts(opts("bytes_forwarded_total",
			"Payload bytes written to their destination node."))),
		drops: make(map[string]prometheus.Counter),
	}
	dropVec := prometheus.NewCounterVec(prometheus.CounterOpts(opts("drops_total",
		"Frames dropped, by reason (no_peer, queue_full, malformed, write_error, closed).")), []string{"reason"})
	for _, r := range []string{dropNoPeer, dropQueueFull, dropMalformed, dropWriteError, dropClosed} {
		m.drops[r] = dropVec.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "bad_auth", "unauthorized", "io_error", "bad_request", "error"} {
		m.handshakes.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connections, m.handshakes, m.framesForwarded, m.bytesForwarded, dropVec} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// drop counts a dropped frame; reason is one of the drop* constants.
func (m *metrics) drop(reason string) { m.drops[reason].Inc() }
