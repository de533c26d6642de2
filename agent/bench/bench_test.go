package bench_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/netnslab"
)

// TestBenchScript runs bench.sh briefly (one round, 1 s per iperf3 run) and
// checks that its table has every row with every column in it (throughput
// both ways, 4 streams, idle RTT, RTT under the 4-stream load): the benchmark
// the README promises works on a fresh machine. It asserts nothing about
// how large the numbers are.
func TestBenchScript(t *testing.T) {
	netnslab.NeedRoot(t, "bench.sh builds network namespaces and TUN devices", "ip", "iperf3", "wg", "ping")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "bench.sh")
	// BENCH_BASE_REV=HEAD: the committed tree as the base, so that the
	// base build and its mesh are exercised too.
	cmd.Env = append(os.Environ(), "BENCH_SECONDS=1", "BENCH_PINGS=20", "BENCH_ROUNDS=1", "BENCH_BASE_REV=HEAD")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench.sh: %v\n%s", err, out)
	}
	text := string(out)
	// Every row: 1 stream, 1 stream B>A, 4 streams, idle p50, loaded p50,
	// loaded p99; the loaded percentiles are ordered.
	const cols = 6
	for _, name := range []string{"raw-veth", "floor", "wireguard-go", "tunnelmesh", "tunnelmesh@base"} {
		m := regexp.MustCompile(`(?m)^` + name + strings.Repeat(`\s+(\S+)`, cols) + `$`).FindStringSubmatch(text)
		if m == nil {
			t.Errorf("no %s row with %d columns in:\n%s", name, cols, text)
			continue
		}
		var v [cols + 1]float64
		for i := 1; i <= cols; i++ {
			f, err := strconv.ParseFloat(m[i], 64)
			if err != nil || f <= 0 {
				t.Errorf("%s row: column %d is %q, want a positive number\n%s", name, i, m[i], text)
			}
			v[i] = f
		}
		if v[5] > v[6] {
			t.Errorf("%s row: loaded p50 %v above loaded p99 %v\n%s", name, v[5], v[6], text)
		}
	}
	for _, want := range []string{"tunnelmesh / wireguard-go    1 stream", "tunnelmesh / tunnelmesh@base 1 stream", "B>A", "loaded p50", "load average", "A tx: ", "B rx: ", "tunnelmesh node RSS:", "tunnelmesh@base node RSS:", "floor (TUN<->UDP forwarder"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if i := strings.Index(text, "TunnelMesh benchmark"); i >= 0 {
		t.Logf("\n%s", text[i:])
	}
}
