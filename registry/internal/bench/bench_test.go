package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/pgtest"
)

// BenchmarkRegistry runs the whole experiment once (1,000 watchers, 10
// rounds: about half a minute) and prints its table. It is one experiment,
// so b.N is ignored (the first call takes far longer than -benchtime, and
// the testing package does not call it again).
func BenchmarkRegistry(b *testing.B) {
	res, err := Run(Options{Nodes: 1000, Concurrency: 32, Rounds: 10}, os.Stdout)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.JoinsPerSecond, "joins/s")
	b.ReportMetric(float64(res.LastP50.Milliseconds()), "fanout-last-p50-ms")
	b.ReportMetric(float64(res.LastP99.Milliseconds()), "fanout-last-p99-ms")
	b.ReportMetric(0, "ns/op")
}

// TestSmallRun checks the experiment end to end on a few nodes (the numbers
// themselves are not asserted): with deltas (every watcher gets each change
// as a delta), with deltas decoded and applied, and with whole netmaps.
func TestSmallRun(t *testing.T) {
	var out nopWriter
	const nodes, rounds = 20, 2
	for _, o := range []Options{{}, {Decode: true}, {Whole: true}} {
		o.Nodes, o.Concurrency, o.Rounds = nodes, 4, rounds
		res, err := Run(o, &out)
		if err != nil {
			t.Fatal(err)
		}
		if res.NetmapBytes == 0 || res.JoinsPerSecond <= 0 || res.LastP99 < res.LastP50 {
			t.Fatalf("Run(%+v) = %+v", o, res)
		}
		wantDeltas, wantWholes := rounds*nodes, 0
		if o.Whole {
			wantDeltas, wantWholes = 0, rounds*nodes
		}
		if res.Deltas != wantDeltas || res.Wholes != wantWholes {
			t.Fatalf("Run(%+v): %d deltas and %d whole netmaps, want %d and %d", o, res.Deltas, res.Wholes, wantDeltas, wantWholes)
		}
		if !o.Whole && res.AnswerBytes >= res.NetmapBytes {
			t.Fatalf("Run(%+v): deltas of %d bytes, whole netmap %d", o, res.AnswerBytes, res.NetmapBytes)
		}
	}
	if _, err := Run(Options{Nodes: 1, Concurrency: 1, Rounds: 1}, &out); err == nil {
		t.Fatal("Run with one node succeeded")
	}
}

// TestSmallRunPostgres runs the experiment on two replicas sharing a
// PostgreSQL database: joins and watches spread over both, so each change
// reaches half the watchers through the other replica.
func TestSmallRunPostgres(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(Options{Nodes: 20, Concurrency: 4, Rounds: 4, Replicas: 2, PostgresDSN: pgtest.NewDB(t)}, &out)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	if res.JoinsPerSecond <= 0 || res.LastP99 < res.LastP50 || !strings.Contains(out.String(), "store postgres, 2 replica(s)") {
		t.Fatalf("Run = %+v\n%s", res, out.String())
	}
	// -stages and -stalldump: a line per round with every stage, and a
	// goroutine dump of every round slower than StallAfter.
	out.Reset()
	dump := filepath.Join(t.TempDir(), "stall")
	if _, err := Run(Options{Nodes: 6, Concurrency: 2, Rounds: 2, Replicas: 2, PostgresDSN: pgtest.NewDB(t),
		Stages: true, StallDump: dump, StallAfter: time.Nanosecond}, &out); err != nil {
		t.Fatalf("Run with stages: %v\n%s", err, out.String())
	}
	_, table, ok := strings.Cut(out.String(), "stages of each round")
	if !ok || !regexp.MustCompile(`(?m)^ +1 +[0-9.]+s +1 +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ `).MatchString(table) {
		t.Fatalf("no stages of round 1 with every stage timed:\n%s", out.String())
	}
	for _, r := range []string{"00", "01"} {
		b, err := os.ReadFile(dump + ".round" + r + ".txt")
		if err != nil || !bytes.Contains(b, []byte("goroutine ")) {
			t.Fatalf("goroutine dump of round %s: %v", r, err)
		}
	}
	if _, err := Run(Options{Nodes: 2, Concurrency: 1, Rounds: 1, Replicas: 2}, &out); err == nil {
		t.Fatal("Run with two replicas and no database succeeded")
	}
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestSmokeTable runs the benchmark as the README does, small: more rounds
// than one node may change its endpoints in a burst, and every row of the
// table must carry numbers.
func TestSmokeTable(t *testing.T) {
	var out bytes.Buffer
	if _, err := Run(Options{Nodes: 6, Concurrency: 3, Rounds: 25}, &out); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	num := regexp.MustCompile(`^[0-9.]+(ns|µs|ms|s)?$|^[0-9]+m[0-9.]+s$`)
	want := map[string]int{"joins/s": 1, "join latency": 3, "fan-out, each watcher": 3, "fan-out, last of 6 watchers": 3}
	rows := map[string]bool{}
	var header bool
	for _, line := range strings.Split(out.String(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "registry-bench:") || strings.HasPrefix(line, "registry config:") {
			continue
		}
		if strings.HasPrefix(line, "metric") {
			header = true
			continue
		}
		var name string
		for r := range want {
			if strings.HasPrefix(line, r+" ") {
				name = r
			}
		}
		if name == "" {
			t.Fatalf("unexpected row %q in\n%s", line, out.String())
		}
		vals := strings.Fields(strings.TrimPrefix(line, name))
		if len(vals) != want[name] {
			t.Fatalf("row %q: %d values, want %d", line, len(vals), want[name])
		}
		for _, v := range vals {
			if !num.MatchString(v) {
				t.Fatalf("row %q: %q is not a number", line, v)
			}
		}
		rows[name] = true
	}
	for r := range want {
		if !rows[r] {
			t.Errorf("no row %q in\n%s", r, out.String())
		}
	}
	if !header || !strings.Contains(out.String(), "max_conns_per_source") {
		t.Errorf("table header or configuration line missing:\n%s", out.String())
	}
	if _, err := Run(Options{Nodes: 2, Concurrency: 1, Rounds: 40}, &out); err == nil || !strings.Contains(err.Error(), "burst") {
		t.Errorf("Run with 20 changes per node = %v, want an error naming the burst", err)
	}
}

type nopWriter struct{ n int }

func (w *nopWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
