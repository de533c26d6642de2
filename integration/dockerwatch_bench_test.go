package integration

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/integration/harness"
)

// benchPolicy: node2 may reach node1's containers on 8080 and 8081
// (docker section) and node1's own tcp 8090 (an ordinary rule).
const benchPolicy = `rules:
  - name: ping
    from: "*"
    to: "*"
    proto: icmp
  - name: direct
    from: node2
    to: node1
    proto: tcp
    ports: 8090
docker:
  from: [node2]
  to: [node1]
  ports: [8080, 8081]
`

var rateRE = regexp.MustCompile(`([0-9.]+) MB/s`)

// TestDockerwatchBench measures TCP throughput from node2 over the mesh to
// the same HTTP server (tunnelmesh/demo-web) three ways, in alternating
// rounds: in a container on node1's Docker network, through dockerwatch's
// forward (node1's mesh address, port 8080, DNAT to the container); in
// node1's own network namespace (port 8090: the mesh without the
// forward); and in a container on a network node1 is not on, through the
// forward to the Docker host's published port (8081, DNAT to the host,
// which hands it to docker-proxy). Each round downloads TUNNELMESH_DOCKERWATCH_BENCH_MB megabytes
// (default 256) with the demo image's client in node2's namespace; it
// prints a table, the medians and the load average. The benchmark runs
// with TUNNELMESH_DOCKERWATCH_BENCH=1 (rounds:
// TUNNELMESH_DOCKERWATCH_BENCH_ROUNDS, default 6); without it, a smoke run
// of the same code (two rounds of 4 MB) keeps it working.
func TestDockerwatchBench(t *testing.T) {
	rounds, mb := benchEnv(t, "TUNNELMESH_DOCKERWATCH_BENCH_ROUNDS", 6), benchEnv(t, "TUNNELMESH_DOCKERWATCH_BENCH_MB", 256)
	if os.Getenv("TUNNELMESH_DOCKERWATCH_BENCH") != "1" {
		rounds, mb = 2, 4
	}
	env := harness.NewWithPolicy(t, benchPolicy, "mesh", "containers", "apps")
	n1 := env.AddNodeWith("node1", harness.ForwardingNode, "mesh", "containers")
	n2 := env.AddNode("node2", "mesh")
	n2.WaitPeers(joinTimeout, "node1")
	ip1 := n1.Status().IP.String()
	client := env.AddHTTPClient(n2)
	env.AddDockerwatch(n1)
	env.AddWeb("web", "containers", map[string]string{"tunnelmesh.expose": "8080/tcp", "tunnelmesh.name": "web"})
	env.AddWebIn(n1, "direct", "--listen", ":8090")
	env.AddWebWith("far", harness.WebOptions{Net: "apps", Args: []string{"--listen", ":8081"}, Publish: []string{"8081/tcp"},
		Labels: map[string]string{"tunnelmesh.expose": "8081/tcp", "tunnelmesh.name": "far"}})
	paths := []struct{ name, url string }{
		{"forward", fmt.Sprintf("http://%s:8080/", ip1)},
		{"direct", fmt.Sprintf("http://%s:8090/", ip1)},
		{"via host", fmt.Sprintf("http://%s:8081/", ip1)},
	}
	for _, p := range paths {
		if _, err := waitGet(client, p.url, 90*time.Second); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
	load := func() string {
		b, _ := os.ReadFile("/proc/loadavg")
		return strings.Join(strings.Fields(string(b))[:3], " ")
	}
	loadBefore := load()
	rate := func(url string) float64 {
		out, err := client.Get(fmt.Sprintf("%sbytes?n=%d", url, mb*1_000_000), 5*time.Minute, "--discard")
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		m := rateRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no rate in %q", out)
		}
		r, err := strconv.ParseFloat(m[1], 64)
		if err != nil || !(r > 0) {
			t.Fatalf("rate %q in %q: want a positive number", m[1], out)
		}
		return r
	}
	// Rounds alternate the order: forward, direct, via host; then the
	// reverse.
	var fw, dr, vh []float64
	var table strings.Builder
	fmt.Fprintf(&table, "%-6s %14s %14s %7s %15s %7s\n", "round", "forward MB/s", "direct MB/s", "ratio", "via host MB/s", "ratio")
	for i := range rounds {
		var r [3]float64
		order := []int{0, 1, 2}
		if i%2 == 1 {
			order = []int{2, 1, 0}
		}
		for _, j := range order {
			r[j] = rate(paths[j].url)
		}
		fw, dr, vh = append(fw, r[0]), append(dr, r[1]), append(vh, r[2])
		fmt.Fprintf(&table, "%-6d %14.1f %14.1f %7.2f %15.1f %7.2f\n", i+1, r[0], r[1], r[0]/r[1], r[2], r[2]/r[1])
	}
	mf, md, mv := median(fw), median(dr), median(vh)
	fmt.Fprintf(&table, "%-6s %14.1f %14.1f %7.2f %15.1f %7.2f\n", "median", mf, md, mf/md, mv, mv/md)
	t.Logf("TCP throughput node2 -> node1 over the mesh, %d MB per round, load average %s before, %s after (%d CPUs shared):\n%s",
		mb, loadBefore, load(), runtime.NumCPU(), table.String())
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func benchEnv(t *testing.T, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", key, v)
	}
	return n
}
