package node

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/device"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/engine"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/filter"
)

// busyStatus is the data plane of a node with n peers, every one of them
// with a session, a path, probes and round trip samples, every drop
// reason counted, rules policy rules, and the handshake histograms at
// their bound.
func busyStatus(n, rules int) engine.Status {
	st := engine.Status{Drops: map[string]uint64{}}
	st.Filter.RuleAccepts = map[string]uint64{}
	for i := range n {
		ip := netip.AddrFrom4([4]byte{100, 64, byte(1 + i/250), byte(1 + i%250)})
		st.Peers = append(st.Peers, device.PeerStatus{
			Name: fmt.Sprintf("peer%03d", i), IP: ip, Path: fmt.Sprintf("udp 192.0.2.%d:41641", i%250+1),
			LastHandshake: time.Unix(1700000000, 0), HasSession: true, RxBytes: 1, TxBytes: 1, RxPackets: 1, TxPackets: 1,
			RTT: time.Millisecond, PathChanges: 1,
			Latency: device.PeerLatency{ProbesSent: 10, ProbesAnswered: 9, RTTCounts: [7]uint64{1, 2, 3, 1, 1, 1, 0}, RTTSum: time.Second},
		})
	}
	// The agent's bound: 16 (peer, port) pairs and the overflow.
	for i := range 16 {
		ip := netip.AddrFrom4([4]byte{100, 64, byte(1 + i/250), byte(1 + i%250)})
		st.Filter.FlowRTT = append(st.Filter.FlowRTT, filter.FlowRTT{Peer: ip, Port: 22, Counts: [filter.NumFlowRTTCounts]uint64{1}})
	}
	st.Filter.FlowRTT = append(st.Filter.FlowRTT, filter.FlowRTT{Counts: [filter.NumFlowRTTCounts]uint64{1}})
	for r := range device.NumDropReasons {
		st.Drops[r.String()] = 1
	}
	for _, r := range filter.Reasons() {
		st.Drops["filter_"+r.String()] = 1
	}
	for i := range rules {
		st.Filter.RuleAccepts[fmt.Sprintf("rule%d", i)] = 1
	}
	return st
}

// scrapeSeries serves the node's metrics registry (as handler does) for st
// and counts the series in the exposition.
func scrapeSeries(t *testing.T, st engine.Status) (int, string) {
	t.Helper()
	m := newMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.reconfigs, m.reconfigErrors, m.registryErrors, m.netmapVersion,
		&planeCollector{status: func() (engine.Status, bool) { return st, true }},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d: %s", rec.Code, rec.Body)
	}
	n := 0
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n, rec.Body.String()
}

// TestMetricsSeriesOn100Peers measures the cost of the agent's /metrics on
// a 100-peer mesh, every peer busy, 10 policy rules and the handshake
// histograms at their bound: it must stay under 2,000 series.
func TestMetricsSeriesOn100Peers(t *testing.T) {
	base, _ := scrapeSeries(t, busyStatus(0, 10))
	n, body := scrapeSeries(t, busyStatus(100, 10))
	flows := 17 * (filter.NumFlowRTTCounts + 2)
	t.Logf("series: %d with 100 peers: %d per peer, %d of handshake histograms, %d other node-wide", n, (n-base)/100, flows, base-flows)
	if n >= 2000 {
		t.Fatalf("%d series with 100 peers, want < 2000", n)
	}
	for _, want := range []string{
		`tunnelmesh_agent_peer_path_rtt_seconds_bucket{peer="peer099",le="1.024"} 9`,
		`tunnelmesh_agent_peer_probes_sent_total{peer="peer099"} 10`,
		`tunnelmesh_agent_peer_tcp_handshake_seconds_count{peer="other",port="other"} 1`,
		`tunnelmesh_agent_peer_tcp_handshake_seconds_count{peer="peer015",port="22"} 1`,
		`tunnelmesh_agent_drops_total{reason="too_late"} 1`,
		`tunnelmesh_agent_handshakes_previous_psk_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestParseMetricsListen(t *testing.T) {
	mesh := netip.MustParseAddr("100.64.0.7")
	tests := []struct {
		name, in string
		want     metricsListen
		err      string
	}{
		{"off", "", metricsListen{}, ""},
		{"mesh", "mesh:9101", metricsListen{addr: "100.64.0.7:9101", onMesh: true, publish: 9101}, ""},
		{"mesh other port", "mesh:9200", metricsListen{addr: "100.64.0.7:9200", onMesh: true, publish: 9200}, ""},
		{"mesh bad port", "mesh:x", metricsListen{}, `metrics listen "mesh:x": port "x" must be 1 to 65535`},
		{"mesh port 0", "mesh:0", metricsListen{}, `metrics listen "mesh:0": port "0" must be 1 to 65535`},
		{"loopback: not published", "127.0.0.1:9101", metricsListen{addr: "127.0.0.1:9101"}, ""},
		{"all addresses: published", "0.0.0.0:9101", metricsListen{addr: "0.0.0.0:9101", publish: 9101}, ""},
		{"empty host: published", ":9102", metricsListen{addr: ":9102", publish: 9102}, ""},
		{"the mesh IP: published", "100.64.0.7:9101", metricsListen{addr: "100.64.0.7:9101", publish: 9101}, ""},
		{"no port", "127.0.0.1", metricsListen{}, `metrics listen "127.0.0.1": address 127.0.0.1: missing port in address`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMetricsListen(tc.in, mesh)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("parseMetricsListen(%q) = %+v, %v, want error %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseMetricsListen(%q) = %+v, %v, want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}
