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
// checks that its table has every row with numbers in it: the benchmark
// the README promises works on a fresh machine. It asserts nothing about
// the numbers themselves.
func TestBenchScript(t *testing.T) {
	netnslab.NeedRoot(t, "bench.sh builds network namespaces and TUN devices", "ip", "iperf3", "wg", "ping")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "bench.sh")
	cmd.Env = append(os.Environ(), "BENCH_SECONDS=1", "BENCH_PINGS=20", "BENCH_ROUNDS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench.sh: %v\n%s", err, out)
	}
	text := string(out)
	rows := map[string]int{"raw-veth": 3, "wireguard-go": 3, "tunnelmesh": 3, "floor": 1}
	for name, numbers := range rows {
		m := regexp.MustCompile(`(?m)^` + name + `\s+(\S+)\s+(\S+)\s+(\S+)$`).FindStringSubmatch(text)
		if m == nil {
			t.Errorf("no %s row in:\n%s", name, text)
			continue
		}
		for i := 3; i > 3-numbers; i-- {
			if v, err := strconv.ParseFloat(m[i], 64); err != nil || v <= 0 {
				t.Errorf("%s row: column %d is %q, want a positive number\n%s", name, i, m[i], text)
			}
		}
	}
	for _, want := range []string{"tunnelmesh / wireguard-go  1 stream", "tunnelmesh node RSS:", "floor (TUN<->UDP forwarder"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if i := strings.Index(text, "TunnelMesh benchmark"); i >= 0 {
		t.Logf("\n%s", text[i:])
	}
}
