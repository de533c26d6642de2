package bench

import (
	"os"
	"testing"
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
// themselves are not asserted).
func TestSmallRun(t *testing.T) {
	var out nopWriter
	res, err := Run(Options{Nodes: 20, Concurrency: 4, Rounds: 2}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.NetmapBytes == 0 || res.JoinsPerSecond <= 0 || res.LastP99 < res.LastP50 {
		t.Fatalf("Run = %+v", res)
	}
	if _, err := Run(Options{Nodes: 1, Concurrency: 1, Rounds: 1}, &out); err == nil {
		t.Fatal("Run with one node succeeded")
	}
}

type nopWriter struct{ n int }

func (w *nopWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
