package node

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/engine"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	namespace = "tunnelmesh"
	subsystem = "agent"
)

// MetricsOnMesh is the prefix of Config.MetricsListen ("mesh:9101") that
// means the node's own mesh address, once the interface has it.
const MetricsOnMesh = "mesh:"

// MetricsService is the service a node publishes for its agent's /metrics
// when it serves them on its mesh address: the registry's Prometheus
// service discovery lists the agent at the node's mesh address and this
// service's port (registry/internal/server/sd.go).
const MetricsService = "metrics-agent"

// metricsListen is how Config.MetricsListen reads: the address to listen
// on (empty for none), whether that is the mesh address (listen once the
// interface is up), and the port to publish as MetricsService (0: none;
// published when the metrics are reachable on the mesh address: the mesh
// form, the mesh IP itself, or an unspecified address).
type metricsListen struct {
	addr    string
	onMesh  bool
	publish uint16
}

// CheckMetricsListen reports whether s is a valid Config.MetricsListen.
func CheckMetricsListen(s string) error {
	_, err := parseMetricsListen(s, netip.IPv4Unspecified())
	return err
}

// parseMetricsListen reads s: "" (no metrics server), "mesh:PORT", or
// HOST:PORT.
func parseMetricsListen(s string, meshIP netip.Addr) (metricsListen, error) {
	if s == "" {
		return metricsListen{}, nil
	}
	if ps, ok := strings.CutPrefix(s, MetricsOnMesh); ok {
		port, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || port == 0 {
			return metricsListen{}, fmt.Errorf("metrics listen %q: port %q must be 1 to 65535", s, ps)
		}
		return metricsListen{addr: netip.AddrPortFrom(meshIP, uint16(port)).String(), onMesh: true, publish: uint16(port)}, nil
	}
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return metricsListen{}, fmt.Errorf("metrics listen %q: %w", s, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return metricsListen{addr: s}, nil // a named port: served, not published
	}
	ml := metricsListen{addr: s}
	if ip, err := netip.ParseAddr(host); host == "" || err == nil && (ip.IsUnspecified() || ip.Unmap() == meshIP) {
		ml.publish = uint16(port)
	}
	return ml, nil
}

// metrics are the node's own counters; the data plane's counters are read
// at scrape time by planeCollector.
type metrics struct {
	reconfigs      prometheus.Counter
	reconfigErrors prometheus.Counter
	registryErrors prometheus.Counter
	netmapVersion  prometheus.Gauge
}

func newMetrics() *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help})
	}
	return &metrics{
		reconfigs:      c("reconfigs_total", "Netmaps applied to the data plane."),
		reconfigErrors: c("reconfig_errors_total", "Netmaps the data plane refused."),
		registryErrors: c("registry_errors_total", "Failed calls to the registry."),
		netmapVersion: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem,
			Name: "netmap_version", Help: "Version of the netmap the node runs."}),
	}
}

func (m *metrics) handler(n *Node) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.reconfigs, m.reconfigErrors, m.registryErrors, m.netmapVersion,
		&planeCollector{status: func() (engine.Status, bool) {
			if n.eng == nil {
				return engine.Status{}, false
			}
			return n.eng.Status(), true
		}},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
}

// histDesc is desc for a histogram collected as a const histogram (series
// name_bucket, name_sum, name_count; observability's metric catalogue
// reads the name from this call).
func histDesc(name, help string, labels ...string) *prometheus.Desc {
	return desc(name, help, labels...)
}

var (
	descPeers         = desc("peers", "Peers in the data plane configuration.")
	descRxBytes       = desc("rx_bytes_total", "Transport bytes received from all peers (wire size).")
	descTxBytes       = desc("tx_bytes_total", "Transport bytes sent to all peers (wire size).")
	descRxPackets     = desc("rx_packets_total", "Transport packets received from all peers.")
	descTxPackets     = desc("tx_packets_total", "Transport packets sent to all peers.")
	descHandshakes    = desc("handshakes_total", "Handshakes completed (sessions established, either role).")
	descHSInitiated   = desc("handshake_initiations_total", "Handshake initiations sent.")
	descHSPreviousPSK = desc("handshakes_previous_psk_total", "Initiations accepted with the mesh's previous PSK during a rotation's overlap.")
	descDrops         = desc("drops_total", "Packets dropped by the data plane, by reason.", "reason")
	descPeerRxBytes   = desc("peer_rx_bytes_total", "Bytes received from the peer.", "peer")
	descPeerTxBytes   = desc("peer_tx_bytes_total", "Bytes sent to the peer.", "peer")
	descPeerRxPackets = desc("peer_rx_packets_total", "Packets received from the peer.", "peer")
	descPeerTxPackets = desc("peer_tx_packets_total", "Packets sent to the peer.", "peer")
	descPeerPathRTT   = histDesc("peer_path_rtt_seconds", "Round trip times of the probes on the path that carries the peer's packets (the count is the probes answered).", "peer")
	descPeerProbes    = desc("peer_probes_sent_total", "Probes sent on the path that carries the peer's packets (loss: 1 - answered/sent, answered being peer_path_rtt_seconds_count).", "peer")
	descPeerTCPHS     = histDesc("peer_tcp_handshake_seconds", "Time from the node's SYN to the peer's SYN-ACK for the TCP connections the node opens, by destination port (other: ports neither named by a policy rule nor among the busiest; peer other: pairs beyond the bound).", "peer", "port")
	descPeerLastHS    = desc("peer_last_handshake_timestamp_seconds", "Unix time of the last completed handshake with the peer.", "peer")
	descPeerPathChg   = desc("peer_path_changes_total", "Moves of the peer from one path (transport or address) to another.", "peer")
	descPeerPath      = desc("peer_path", "1 for the transport that carries the peer's packets now (udp, ssh or relay), with the path as status shows it.", "peer", "transport", "path")
	descQueueSojourn  = histDesc("queue_sojourn_seconds", "Time packets spent in the peers' send (tx) or receive (rx) queues, all peers together; sparse packets skip the queue and count their time from reader to send or delivery.", "direction")
	descQueueDrops    = desc("queue_drops_total", "Packets dropped by the peer queues' discipline, all peers together: codel (queued too long) or limit (queue full).", "direction", "discipline")
	descFilterAccepts = desc("filter_accepts_total", "Packets from the mesh accepted by each rule of the node's policy (replies to the node's own flows are not counted here).", "rule")
	descFilterFlows   = desc("filter_flows", "Flows in the packet filter's connection table.")
	descFilterPolicy  = desc("filter_policy_version", "Version of the policy the packet filter enforces (0: the registry's built-in default policy, or no filter).")
)

// planeCollector reads the data plane's counters at scrape time.
type planeCollector struct {
	status func() (engine.Status, bool) // false before the data plane runs
}

func (c *planeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeers, descRxBytes, descTxBytes, descRxPackets, descTxPackets,
		descHandshakes, descDrops, descPeerRxBytes, descPeerTxBytes, descPeerRxPackets, descPeerTxPackets,
		descHSInitiated, descHSPreviousPSK, descPeerLastHS, descPeerPath, descPeerPathChg, descPeerPathRTT, descPeerProbes,
		descPeerTCPHS, descQueueSojourn, descQueueDrops, descFilterAccepts, descFilterFlows, descFilterPolicy} {
		ch <- d
	}
}

// histogram turns non-cumulative counts by upper bound (the last one
// above every bound) into a Prometheus histogram.
func histogram(d *prometheus.Desc, bounds []float64, counts []uint64, sum float64, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, ub := range bounds {
		cum += counts[i]
		buckets[ub] = cum
	}
	cum += counts[len(bounds)]
	return prometheus.MustNewConstHistogram(d, cum, sum, buckets, labels...)
}

func (c *planeCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.status()
	if !ok {
		return
	}
	names := make(map[netip.Addr]string, len(st.Peers))
	var tx, rx queueSum // the peer queues, all peers together
	for _, p := range st.Peers {
		names[p.IP] = p.Name
		l := &p.Latency
		ch <- histogram(descPeerPathRTT, device.RTTBuckets[:], l.RTTCounts[:], l.RTTSum.Seconds(), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerProbes, prometheus.CounterValue, float64(l.ProbesSent), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerRxBytes, prometheus.CounterValue, float64(p.RxBytes), p.Name)
		if p.Path != "" {
			kind, _, _ := strings.Cut(p.Path, " ")
			ch <- prometheus.MustNewConstMetric(descPeerPath, prometheus.GaugeValue, 1, p.Name, kind, p.Path)
		}
		ch <- prometheus.MustNewConstMetric(descPeerPathChg, prometheus.CounterValue, float64(p.PathChanges), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerTxBytes, prometheus.CounterValue, float64(p.TxBytes), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerRxPackets, prometheus.CounterValue, float64(p.RxPackets), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerTxPackets, prometheus.CounterValue, float64(p.TxPackets), p.Name)
		tx.add(p.TxQueue)
		rx.add(p.RxQueue)
		if !p.LastHandshake.IsZero() {
			ch <- prometheus.MustNewConstMetric(descPeerLastHS, prometheus.GaugeValue, float64(p.LastHandshake.UnixNano())/1e9, p.Name)
		}
	}
	tx.collect(ch, "tx")
	rx.collect(ch, "rx")
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(st.Peers)))
	ch <- prometheus.MustNewConstMetric(descRxBytes, prometheus.CounterValue, float64(st.Counters.RxBytes))
	ch <- prometheus.MustNewConstMetric(descTxBytes, prometheus.CounterValue, float64(st.Counters.TxBytes))
	ch <- prometheus.MustNewConstMetric(descRxPackets, prometheus.CounterValue, float64(st.Counters.RxPackets))
	ch <- prometheus.MustNewConstMetric(descTxPackets, prometheus.CounterValue, float64(st.Counters.TxPackets))
	ch <- prometheus.MustNewConstMetric(descHandshakes, prometheus.CounterValue, float64(st.Counters.HandshakesCompleted))
	ch <- prometheus.MustNewConstMetric(descHSInitiated, prometheus.CounterValue, float64(st.Counters.HandshakesInitiated))
	ch <- prometheus.MustNewConstMetric(descHSPreviousPSK, prometheus.CounterValue, float64(st.Counters.HandshakesPreviousPSK))
	for reason, v := range st.Drops {
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(v), reason)
	}
	for rule, v := range st.Filter.RuleAccepts {
		ch <- prometheus.MustNewConstMetric(descFilterAccepts, prometheus.CounterValue, float64(v), rule)
	}
	for _, f := range st.Filter.FlowRTT {
		peer, port := "other", "other"
		if f.Peer.IsValid() {
			if peer = names[f.Peer]; peer == "" {
				peer = f.Peer.String() // a peer since removed
			}
		}
		if f.Port != 0 {
			port = strconv.Itoa(int(f.Port))
		}
		ch <- histogram(descPeerTCPHS, engine.FlowRTTBuckets[:], f.Counts[:], f.Sum.Seconds(), peer, port)
	}
	ch <- prometheus.MustNewConstMetric(descFilterFlows, prometheus.GaugeValue, float64(st.Filter.Flows))
	ch <- prometheus.MustNewConstMetric(descFilterPolicy, prometheus.GaugeValue, float64(st.Filter.PolicyVersion))
}

// queueSum adds up the peer queues of one direction.
type queueSum device.QueueStats

func (q *queueSum) add(st device.QueueStats) {
	for i, n := range st.Sojourn {
		q.Sojourn[i] += n
	}
	q.SojournSum += st.SojournSum
	q.CoDelDrops += st.CoDelDrops
	q.TailDrops += st.TailDrops
}

// collect sends the sum as the sojourn histogram (cumulative buckets) and
// the drop counters of direction dir.
func (q *queueSum) collect(ch chan<- prometheus.Metric, dir string) {
	buckets := make(map[float64]uint64, len(device.SojournBuckets))
	var cum uint64
	for i, le := range device.SojournBuckets {
		cum += q.Sojourn[i]
		buckets[le] = cum
	}
	cum += q.Sojourn[len(device.SojournBuckets)]
	ch <- prometheus.MustNewConstHistogram(descQueueSojourn, cum, q.SojournSum.Seconds(), buckets, dir)
	ch <- prometheus.MustNewConstMetric(descQueueDrops, prometheus.CounterValue, float64(q.CoDelDrops), dir, "codel")
	ch <- prometheus.MustNewConstMetric(descQueueDrops, prometheus.CounterValue, float64(q.TailDrops), dir, "limit")
}
