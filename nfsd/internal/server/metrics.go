package server

import "github.com/prometheus/client_golang/prometheus"

var (
	refusedConns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tunnelmesh", Subsystem: "nfsd", Name: "refused_connections_total",
		Help: "Connections refused or closed by the identity check, by reason: outside_mesh, unknown_node, no_netmap, removed.",
	}, []string{"reason"})
	mounts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tunnelmesh", Subsystem: "nfsd", Name: "mounts_total",
		Help: "MOUNT requests by result: ok, refused (no grant or not a node), no_such_export.",
	}, []string{"result"})
	ops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tunnelmesh", Subsystem: "nfsd", Name: "ops_total",
		Help: "RPC requests answered, by operation (nfs.read, mount.mnt, ..., other) and result: ok, an NFS/MOUNT status (acces, rofs, stale, noent, ...), error (another status), rpc_error (not executed), denied.",
	}, []string{"op", "result"})
	bytesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tunnelmesh", Subsystem: "nfsd", Name: "bytes_total",
		Help: "Bytes received from and sent to NFS clients (RPC records, TCP payload).",
	}, []string{"direction"})
	bytesIn, bytesOut = bytesTotal.WithLabelValues("in"), bytesTotal.WithLabelValues("out")
	exportLists       = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "tunnelmesh", Subsystem: "nfsd", Name: "export_lists_total",
		Help: "MOUNT EXPORT requests answered.",
	})
)

// Collectors are the server's metrics, for the binary to register.
var Collectors = []prometheus.Collector{refusedConns, mounts, exportLists, ops, bytesTotal}
