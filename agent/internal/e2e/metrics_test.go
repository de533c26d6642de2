package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
)

// TestMetricsLab: agents with the default --metrics-listen serve /metrics
// on their mesh address only (not on the underlay), with the path round
// trip histograms from the probes and the TCP handshake histograms of the
// connections they open; `tunnelmesh status` carries RTT percentiles and
// loss per peer.
func TestMetricsLab(t *testing.T) {
	l := newLab(t)
	m := l.threeNodes("coord-m")
	nss, nodes, ips := m.nss, m.nodes, m.ips
	l.Start(nss["n2"], "serve", l.tool, "serve", ips["n2"], "80")
	// Enough handshakes to n2:80 for the port to get its own label (no
	// policy rule names it: the lab's policy allows everything). The
	// server may not listen yet at the first tries.
	deadline := time.Now().Add(time.Minute)
	for opened := 0; opened < 6; {
		out, err := l.Run(nss["n1"], time.Minute, l.tool, "scan", ips["n2"], "80", "2s")
		if err == nil && strings.Contains(out, "open=[80]") {
			opened++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("scan from n1 of n2:80 = %q, %v after %d connections", out, err, opened)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Probes: idle paths are probed every 5 s.
	st := l.waitStatus(nodes["n1"], time.Minute, "RTT percentiles of both peers", func(s localapi.Status) bool {
		for _, p := range s.Peers {
			if p.RTTP50 <= 0 || p.Probes == 0 || p.ProbesAnswered == 0 {
				return false
			}
		}
		return len(s.Peers) == 2
	})
	for _, p := range st.Peers {
		t.Logf("n1 -> %s: p50 %v p90 %v p99 %v loss %v over %d probes (%d/%d answered)", p.Name, p.RTTP50, p.RTTP90, p.RTTP99,
			p.Loss, p.Probes, p.ProbesAnswered, p.ProbesSent)
		if p.RTTP50 > p.RTTP90 || p.RTTP90 > p.RTTP99 || p.Loss != 0 {
			t.Errorf("n1 -> %s on a lossless LAN: %+v", p.Name, p)
		}
	}
	out, err := l.Run(nss["n1"], 10*time.Second, l.bin, "status", "--state-dir", nodes["n1"].stateDir)
	if err != nil || !strings.Contains(out, "RTT p50/p90/p99") || !strings.Contains(out, " 0%") {
		t.Errorf("tunnelmesh status = %q, %v; want RTT percentiles and loss", out, err)
	}

	// From n2 over the mesh: n1's metrics.
	body, err := l.Run(nss["n2"], 30*time.Second, l.tool, "get", "http://"+ips["n1"]+":9101/metrics")
	if err != nil {
		t.Fatalf("get n1's metrics over the mesh: %v: %s", err, body)
	}
	for _, want := range []string{
		`tunnelmesh_agent_peer_path_rtt_seconds_bucket{peer="n2",le="+Inf"}`,
		`tunnelmesh_agent_peer_probes_sent_total{peer="n2"}`,
		`tunnelmesh_agent_peer_tcp_handshake_seconds_count{peer="n2",port="80"}`,
		`tunnelmesh_agent_drops_total{reason="too_late"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("n1's metrics lack %q", want)
		}
	}
	// Not on the underlay address.
	if out, err := l.Run(nss["n2"], 30*time.Second, l.tool, "get", "http://10.99.0.11:9101/metrics"); err == nil {
		t.Errorf("n1's metrics answered on its underlay address: %.200s", out)
	}
}
