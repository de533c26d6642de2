package node

import (
	"net/http"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	namespace = "tunnelmesh"
	subsystem = "agent"
)

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
		&planeCollector{n: n},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
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
	descPeerRTT       = desc("peer_rtt_seconds", "Last measured round trip time to the peer through the tunnel.", "peer")
	descPeerLastHS    = desc("peer_last_handshake_timestamp_seconds", "Unix time of the last completed handshake with the peer.", "peer")
	descPeerPathChg   = desc("peer_path_changes_total", "Moves of the peer from one path (transport or address) to another.", "peer")
	descPeerPath      = desc("peer_path", "1 for the transport that carries the peer's packets now (udp, ssh or relay), with the path as status shows it.", "peer", "transport", "path")
	descPeerSojourn   = desc("peer_queue_sojourn_seconds", "Time packets spent in the peer's send (tx) or receive (rx) queue; sparse packets skip the queue and count their time from reader to send or delivery.", "peer", "direction")
	descPeerQDrops    = desc("peer_queue_drops_total", "Packets dropped by the peer queue's discipline: codel (queued too long) or limit (queue full).", "peer", "direction", "discipline")
	descFilterAccepts = desc("filter_accepts_total", "Packets from the mesh accepted by each rule of the node's policy (replies to the node's own flows are not counted here).", "rule")
	descFilterFlows   = desc("filter_flows", "Flows in the packet filter's connection table.")
	descFilterPolicy  = desc("filter_policy_version", "Version of the policy the packet filter enforces (0: the registry's built-in default policy, or no filter).")
)

// planeCollector reads the data plane's counters at scrape time.
type planeCollector struct{ n *Node }

func (c *planeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeers, descRxBytes, descTxBytes, descRxPackets, descTxPackets,
		descHandshakes, descDrops, descPeerRxBytes, descPeerTxBytes, descPeerRxPackets, descPeerTxPackets,
		descHSInitiated, descPeerRTT, descPeerLastHS, descPeerPath, descPeerPathChg, descPeerSojourn, descPeerQDrops, descFilterAccepts, descFilterFlows, descFilterPolicy} {
		ch <- d
	}
}

func (c *planeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.n.eng == nil {
		return
	}
	st := c.n.eng.Status()
	for _, p := range st.Peers {
		ch <- prometheus.MustNewConstMetric(descPeerRxBytes, prometheus.CounterValue, float64(p.RxBytes), p.Name)
		if p.Path != "" {
			kind, _, _ := strings.Cut(p.Path, " ")
			ch <- prometheus.MustNewConstMetric(descPeerPath, prometheus.GaugeValue, 1, p.Name, kind, p.Path)
		}
		ch <- prometheus.MustNewConstMetric(descPeerPathChg, prometheus.CounterValue, float64(p.PathChanges), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerTxBytes, prometheus.CounterValue, float64(p.TxBytes), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerRxPackets, prometheus.CounterValue, float64(p.RxPackets), p.Name)
		ch <- prometheus.MustNewConstMetric(descPeerTxPackets, prometheus.CounterValue, float64(p.TxPackets), p.Name)
		for _, q := range []struct {
			dir string
			st  device.QueueStats
		}{{"tx", p.TxQueue}, {"rx", p.RxQueue}} {
			ch <- queueHistogram(p.Name, q.dir, q.st)
			ch <- prometheus.MustNewConstMetric(descPeerQDrops, prometheus.CounterValue, float64(q.st.CoDelDrops), p.Name, q.dir, "codel")
			ch <- prometheus.MustNewConstMetric(descPeerQDrops, prometheus.CounterValue, float64(q.st.TailDrops), p.Name, q.dir, "limit")
		}
		if p.RTT > 0 {
			ch <- prometheus.MustNewConstMetric(descPeerRTT, prometheus.GaugeValue, p.RTT.Seconds(), p.Name)
		}
		if !p.LastHandshake.IsZero() {
			ch <- prometheus.MustNewConstMetric(descPeerLastHS, prometheus.GaugeValue, float64(p.LastHandshake.UnixNano())/1e9, p.Name)
		}
	}
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
	ch <- prometheus.MustNewConstMetric(descFilterFlows, prometheus.GaugeValue, float64(st.Filter.Flows))
	ch <- prometheus.MustNewConstMetric(descFilterPolicy, prometheus.GaugeValue, float64(st.Filter.PolicyVersion))
}

// queueHistogram is one direction of a peer queue's sojourn times as a
// Prometheus histogram (cumulative buckets).
func queueHistogram(peer, dir string, st device.QueueStats) prometheus.Metric {
	buckets := make(map[float64]uint64, len(device.SojournBuckets))
	var cum uint64
	for i, le := range device.SojournBuckets {
		cum += st.Sojourn[i]
		buckets[le] = cum
	}
	cum += st.Sojourn[len(device.SojournBuckets)]
	return prometheus.MustNewConstHistogram(descPeerSojourn, cum, st.SojournSum.Seconds(), buckets, peer, dir)
}
