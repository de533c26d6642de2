package api

// Where the services next to a node's agent serve Prometheus /metrics on
// the node's mesh address, and the services that tell the registry's
// service discovery (a tcp service named MetricsServicePrefix+component
// lists the component's /metrics at the node's mesh address and that
// port). The default policy opens these ports to nodes tagged monitoring.
const (
	MetricsServicePrefix = "metrics-"

	// tunnelmesh-storage: metrics_port (StorageMetricsPort) on its mesh
	// address, with SeaweedFS's own metrics when configured.
	ServiceMetricsStorage = MetricsServicePrefix + "storage"
	StorageMetricsPort    = 9104
	// tunnelmesh-nfsd: -metrics-listen mesh:NFSDMetricsPort by default.
	ServiceMetricsNFSD = MetricsServicePrefix + "nfsd"
	NFSDMetricsPort    = 9108
	// tunnelmesh-dockerwatch: metrics mesh:DockerwatchMetricsPort by default.
	ServiceMetricsDockerwatch = MetricsServicePrefix + "dockerwatch"
	DockerwatchMetricsPort    = 9103
)
