package engine

import (
	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/filter"
)

// Status is a snapshot of the data plane. Peers are the device's own
// snapshots (device.PeerStatus): the one definition of a peer's status.
type Status struct {
	device.Status
	// Drops counts dropped packets by reason name: the device's
	// (device.DropReason.String) and the filter's, prefixed "filter_".
	// Node-wide; they include traffic of peers since removed.
	Drops map[string]uint64
	// Filter is the packet filter's counters: packets accepted by each
	// rule of the node's policy, flows tracked, the policy version in force.
	Filter filter.Stats
}

// FlowRTTBuckets are the upper bounds, in seconds, of the TCP handshake
// histograms in Status.Filter.FlowRTT (filter.FlowRTTBuckets).
var FlowRTTBuckets = filter.FlowRTTBuckets

// Status returns a snapshot of the device, its peers and the filter.
func (e *Engine) Status() Status {
	s := Status{Status: e.dev.Status(), Filter: e.flt.Stats()}
	s.Drops = make(map[string]uint64, len(s.Counters.Drops)+len(s.Filter.Drops))
	for r, v := range s.Counters.Drops {
		s.Drops[device.DropReason(r).String()] = v
	}
	for r, v := range s.Filter.Drops {
		s.Drops["filter_"+r.String()] = v
	}
	return s
}
