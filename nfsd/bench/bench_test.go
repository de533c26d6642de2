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

// TestBenchScript runs bench.sh briefly (one round, 8 MiB, 200 files) and
// checks that its table has both rows with positive numbers and the ratio
// lines: the benchmark the README promises works on a fresh machine. It
// asserts nothing about the numbers themselves.
func TestBenchScript(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("bench.sh needs root (network namespaces, TUN devices), and CI runs as root")
		}
		t.Skip("bench.sh needs root (network namespaces, TUN devices)")
	}
	for _, tool := range []string{"ip", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("bench.sh needs %s: %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "bench.sh", "8")
	cmd.Env = append(os.Environ(), "BENCH_FILES=200", "BENCH_ROUNDS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench.sh: %v\n%s", err, out)
	}
	text := string(out)
	for _, name := range []string{"underlay", "mesh"} {
		m := regexp.MustCompile(`(?m)^` + name + `\s+(\S+)\s+(\S+)\s+(\S+)$`).FindStringSubmatch(text)
		if m == nil {
			t.Errorf("no %s row in:\n%s", name, text)
			continue
		}
		for i := 1; i <= 3; i++ {
			if v, err := strconv.ParseFloat(m[i], 64); err != nil || v <= 0 {
				t.Errorf("%s row: column %d is %q, want a positive number\n%s", name, i, m[i], text)
			}
		}
	}
	for _, want := range []string{"mesh / underlay:        write ", "per round, mesh / underlay:  [1]", "load average: ", "8 MiB sequential, 200 files"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if i := strings.Index(text, "nfsd benchmark"); i >= 0 {
		t.Logf("\n%s", text[i:])
	}
}
