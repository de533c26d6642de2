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
)

// TestBenchScript runs bench.sh briefly (one round, 8 MiB, 200 files, 1 s of
// iperf3) and checks that its table has, for the veth at full speed and
// shaped, both rows with positive numbers and the ratio lines: the
// benchmark the README promises works on a fresh machine. It asserts
// nothing about the numbers themselves.
func TestBenchScript(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("bench.sh needs root (network namespaces, TUN devices), and CI runs as root")
		}
		t.Skip("bench.sh needs root (network namespaces, TUN devices)")
	}
	for _, tool := range []string{"ip", "tc", "iperf3", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("bench.sh needs %s (scripts/install-deps.sh): %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "bench.sh", "8")
	cmd.Env = append(os.Environ(), "BENCH_FILES=200", "BENCH_ROUNDS=1", "BENCH_IPERF_SECS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench.sh: %v\n%s", err, out)
	}
	text := string(out)
	i := strings.Index(text, "nfsd benchmark")
	if i < 0 {
		t.Fatalf("no table in:\n%s", text)
	}
	table := text[i:]
	full, shaped, found := strings.Cut(table, "veth shaped to 1gbit")
	if !found || !strings.Contains(full, "veth at full speed") {
		t.Fatalf("want a block for the veth at full speed, then one shaped to 1gbit:\n%s", table)
	}
	for _, block := range []struct{ name, text string }{{"full speed", full}, {"shaped", shaped}} {
		for _, name := range []string{"underlay", "mesh"} {
			m := regexp.MustCompile(`(?m)^` + name + `((?:\s+\S+){6})$`).FindStringSubmatch(block.text)
			if m == nil {
				t.Errorf("%s: no %s row with 6 numbers in:\n%s", block.name, name, block.text)
				continue
			}
			for j, f := range strings.Fields(m[1]) {
				if v, err := strconv.ParseFloat(f, 64); err != nil || v <= 0 {
					t.Errorf("%s, %s row: column %d is %q, want a positive number\n%s", block.name, name, j+1, f, block.text)
				}
			}
		}
		for _, want := range []string{"mesh / underlay:  tcp ", "NFS / TCP capacity of the path:  underlay write ", "per round, mesh / underlay:  [1]"} {
			if !strings.Contains(block.text, want) {
				t.Errorf("%s: no %q in:\n%s", block.name, want, block.text)
			}
		}
	}
	for _, want := range []string{"load average: ", "8 MiB sequential in 1 MiB requests (write-n, read-n: 4 in flight), 200 files"} {
		if !strings.Contains(table, want) {
			t.Errorf("no %q in:\n%s", want, table)
		}
	}
	t.Logf("\n%s", table)
}
