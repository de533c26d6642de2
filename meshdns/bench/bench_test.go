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

	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

// TestBenchScript runs bench.sh briefly (100 names, one round of 1 s per
// server) and checks that its table has both rows with numbers in them: the
// benchmark the README promises works on a fresh machine. It asserts
// nothing about the numbers themselves.
func TestBenchScript(t *testing.T) {
	testenv.NeedCommand(t, "dnsperf", "Debian dnsperf; scripts/install-deps.sh installs it")
	testenv.NeedCommand(t, "dig", "Debian dnsutils; scripts/install-deps.sh installs it")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "bench.sh")
	cmd.Env = append(os.Environ(), "NODES=100", "DURATION=1", "ROUNDS=1", "CLIENTS=2")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench.sh: %v\n%s", err, out)
	}
	text := string(out)
	for _, name := range []string{"hosts", "meshdns"} {
		m := regexp.MustCompile(`(?m)^` + name + `\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$`).FindStringSubmatch(text)
		if m == nil {
			t.Errorf("no %s row in:\n%s", name, text)
			continue
		}
		for i, col := range []string{"mean qps", "avg latency us", "lost", "qps per round"} {
			v, err := strconv.ParseFloat(m[i+1], 64)
			if err != nil || v < 0 || (col != "lost" && v == 0) {
				t.Errorf("%s row: %s is %q, want a number\n%s", name, col, m[i+1], text)
			}
		}
	}
	if !regexp.MustCompile(`ratio meshdns/hosts: [0-9.]+x`).MatchString(text) {
		t.Errorf("no ratio line in:\n%s", text)
	}
	if i := strings.Index(text, "meshdns vs hosts"); i >= 0 {
		t.Logf("\n%s", text[i:])
	}
}
