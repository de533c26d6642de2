package meshdns

import (
	"context"
	"sync"

	"github.com/coredns/coredns/plugin/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metric namespace and subsystem: every metric is tunnelmesh_meshdns_*.
// Registered with the default registry, which CoreDNS's prometheus plugin
// serves (the convention of CoreDNS's own plugins).
const (
	namespace = "tunnelmesh"
	subsystem = "meshdns"
)

// Results of a query: the result label of queries_total.
const (
	resultAnswer      = iota // records in the answer section
	resultNoData             // the name exists, not with that type
	resultNXDomain           // no such name in the netmap
	resultFallthrough        // unknown name passed to the next plugin
	resultNoNetmap           // SERVFAIL: no netmap received yet
	numResults
)

var resultNames = [numResults]string{"answer", "nodata", "nxdomain", "fallthrough", "no_netmap"}

// serverCounters caches queries_total's counters by server, sparing the
// per-query label hashing of WithLabelValues.
var serverCounters sync.Map // server string -> *[numResults]prometheus.Counter

func countQuery(ctx context.Context, result int) {
	server := metrics.WithServer(ctx)
	v, ok := serverCounters.Load(server)
	if !ok {
		var cs [numResults]prometheus.Counter
		for i, name := range resultNames {
			cs[i] = queriesTotal.WithLabelValues(server, name)
		}
		v, _ = serverCounters.LoadOrStore(server, &cs)
	}
	v.(*[numResults]prometheus.Counter)[result].Inc()
}

var (
	queriesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "queries_total",
		Help: "Queries for mesh names answered (or passed on) by meshdns, by result.",
	}, []string{"server", "result"})

	netmapVersion = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "netmap_version",
		Help: "Version of the netmap meshdns answers from.",
	}, []string{"origin"})

	netmapNodes = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "netmap_nodes",
		Help: "Nodes with a name in the netmap meshdns answers from.",
	}, []string{"origin"})

	netmapUpdates = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "netmap_updates_total",
		Help: "Netmaps received from the registry.",
	}, []string{"origin"})

	registryErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "registry_errors_total",
		Help: "Failed netmap watch requests to the registry.",
	}, []string{"origin"})

	registryReachable = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "registry_reachable",
		Help: "1 when the last netmap watch request succeeded, 0 while the registry is unreachable.",
	}, []string{"origin"})
)
