package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

// TestStorageBench is storage/bench: S3 PUT and GET from a node to one
// SeaweedFS reached over the mesh and over the underlay, in the same run,
// alternating which goes first each round; it prints a table. Each round
// measures twice: on the bare veth pair (no limit, no crypto: faster than
// any NIC) and with both veths shaped by tc tbf to
// TUNNELMESH_STORAGE_BENCH_RATE (tc's syntax, default 1gbit, "off" for
// none), what a real network gives; each time with iperf3's TCP throughput
// over both paths beside the S3 numbers, the tunnel's raw capacity. With
// TUNNELMESH_STORAGE_BENCH=1 (storage/bench/run.sh sets it) it is the
// benchmark; without, a smoke run of the same code (one round, small
// objects) that keeps the benchmark working and checks every row has
// numbers. SeaweedFS is started directly with its S3 gateway on every
// address of the storage namespace, which tunnelmesh-storage never does, so
// that the underlay can be compared.
func TestStorageBench(t *testing.T) {
	smoke := os.Getenv("TUNNELMESH_STORAGE_BENCH") != "1"
	rounds := envInt(t, "TUNNELMESH_STORAGE_BENCH_ROUNDS", 3)
	if smoke {
		rounds = 1
	}
	weed := weedBinary(t)
	l := newLab(t)
	storageBin, s3tool := buildStorage(t)

	cns := l.addHost("c", 1)
	stNS, aNS := l.addHost("stb", 21), l.addHost("benchc", 22)
	stUnderlay := "10.99.0.21"
	cfgPath := l.defaultPolicyCoordinator(cns, "coord-sb", coordIP, "info")
	tok := l.adminToken(cns, cfgPath)
	stTok := l.adminToken(cns, cfgPath, "--tag", "storage")
	st := l.join(stNS, "stb", "stb", "", coordURL, stTok, "--advertise-storage", "--dns=false", "--log-level", "info")
	stIP := l.waitStatus(st, 20*time.Second, "joined", func(s localapi.Status) bool { return s.IP.IsValid() }).IP.String()
	client := l.join(aNS, "benchc", "benchc", "", coordURL, tok, "--dns=false", "--log-level", "info")
	l.waitStatus(client, 30*time.Second, "sees stb", func(s localapi.Status) bool { return slicesContains(peerNames(s), "stb") })

	dir := filepath.Join(l.Dir(), "weed")
	for _, d := range []string{"data", "master", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	const key, secret = "TMBENCHKEY0000000000", "benchsecretbenchsecretbenchsecret0000000"
	ids := fmt.Sprintf(`{"identities":[{"name":"bench","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List"]}]}`, key, secret)
	if err := os.WriteFile(filepath.Join(dir, "id.json"), []byte(ids), 0o600); err != nil {
		t.Fatal(err)
	}
	// Through tunnelmesh-storage's re-execution entry point, in a mount
	// namespace of its own, so that SeaweedFS's fixed /tmp gRPC sockets
	// are private (storage/internal/weed/privatetmp.go).
	l.Start(stNS, "weed", "unshare", "--mount", "--propagation", "private",
		storageBin, "__tunnelmesh-weed-exec", filepath.Join(dir, "tmp"), dir, weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-dir="+filepath.Join(dir, "data"), "-master.dir="+filepath.Join(dir, "master"),
		"-master.port=29334", "-volume.port=28081", "-volume.max=16", "-master.volumeSizeLimitMB=1024", "-master.telemetry=false",
		"-filer", "-filer.port=28889", "-filer.localSocket="+filepath.Join(dir, "filer.sock"),
		"-s3", "-s3.ip.bind=0.0.0.0", "-s3.port=9000", "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.iam=false",
		"-s3.localSocket="+filepath.Join(dir, "s3.sock"), "-s3.config="+filepath.Join(dir, "id.json"))

	s3 := func(addr string, args ...string) (string, error) {
		cmd := append([]string{"env", "AWS_ACCESS_KEY_ID=" + key, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_REGION=us-east-1", s3tool, addr}, args...)
		out, err := l.Run(aNS, 10*time.Minute, cmd...)
		return strings.TrimSpace(out), err
	}
	waitFor(t, 3*time.Minute, "bucket created over the mesh", func() (bool, string) {
		out, err := s3(stIP+":9000", "mb", "bench")
		return err == nil || strings.Contains(out, "BucketAlreadyExists") || strings.Contains(out, "BucketAlreadyOwnedByYou"), fmt.Sprintf("%q %v", out, err)
	})
	// Warm up both paths (the first put into a new bucket is slow).
	for _, addr := range []string{stIP + ":9000", stUnderlay + ":9000"} {
		if out, err := s3(addr, "bench", "bench", "4096", "4"); err != nil {
			t.Fatalf("warm-up %s: %q %v", addr, out, err)
		}
	}

	// iperf3 on the storage node, on 9001: a port the default policy opens
	// to every member (tunnelmesh-storage, whose port it is, is not
	// running here), so the mesh's filter lets it through.
	testenv.NeedCommand(t, "iperf3", "apt-get install iperf3 (scripts/install-deps.sh)")
	l.Start(stNS, "iperf3", "iperf3", "-s", "-p", "9001")

	iperfSecs := "5"
	if smoke {
		iperfSecs = "1"
	}
	iperf := func(addr string, reverse bool) (float64, error) {
		args := []string{"iperf3", "-c", addr, "-p", "9001", "-t", iperfSecs, "-J"}
		if reverse {
			args = append(args, "-R")
		}
		var last string
		for try := 0; try < 5; try++ { // the server answers one client at a time; busy right after a run
			out, err := l.Run(aNS, 2*time.Minute, args...)
			var r struct {
				End struct {
					SumReceived struct {
						BitsPerSecond float64 `json:"bits_per_second"`
					} `json:"sum_received"`
				} `json:"end"`
			}
			if err == nil && json.Unmarshal([]byte(out), &r) == nil && r.End.SumReceived.BitsPerSecond > 0 {
				return r.End.SumReceived.BitsPerSecond / 8 / 1e6, nil
			}
			last = fmt.Sprintf("%.300q %v", out, err)
			time.Sleep(time.Second)
		}
		return 0, fmt.Errorf("iperf3 %s: %s", strings.Join(args, " "), last)
	}

	// Shaping: the veth of the client and of the storage node (both
	// directions; the mesh's UDP and the underlay's TCP alike) limited to
	// rate by tbf, as a real NIC would be.
	rate := os.Getenv("TUNNELMESH_STORAGE_BENCH_RATE")
	if rate == "" {
		rate = "1gbit"
	}
	shape := func(rate string) {
		for _, ns := range []string{aNS, stNS} {
			if rate == "" {
				_, _ = l.Run(ns, 10*time.Second, "tc", "qdisc", "del", "dev", "eth0", "root")
				continue
			}
			if out, err := l.Run(ns, 10*time.Second, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
				"rate", rate, "burst", "1mb", "latency", "10ms"); err != nil {
				t.Fatalf("tc tbf rate %s in %s: %v %s", rate, ns, err, out)
			}
		}
	}
	conditions := []string{"none"}
	if rate != "off" {
		conditions = append(conditions, rate)
	}

	type result struct{ put, get []float64 }
	type rowKey struct{ cond, path, work string }
	res := map[rowKey]*result{}
	add := func(k rowKey, put, get float64) {
		if res[k] == nil {
			res[k] = &result{}
		}
		res[k].put = append(res[k].put, put)
		res[k].get = append(res[k].get, get)
	}
	workloads := []struct {
		name        string
		size, count string
	}{{"64MiB", strconv.Itoa(64 << 20), "2"}, {"4KiB", "4096", "200"}}
	if smoke {
		workloads[0].name, workloads[0].size, workloads[0].count = "1MiB", strconv.Itoa(1<<20), "1"
		workloads[1].count = "10"
	}
	load0, _ := os.ReadFile("/proc/loadavg")
	paths := []struct{ name, addr string }{{"mesh", stIP}, {"underlay", stUnderlay}}
	for r := range rounds {
		order, conds := paths, conditions
		if r%2 == 1 {
			order = []struct{ name, addr string }{paths[1], paths[0]}
			conds = slices.Clone(conditions)
			slices.Reverse(conds)
		}
		for _, cond := range conds {
			if cond == "none" {
				shape("")
			} else {
				shape(cond)
			}
			for _, p := range order {
				up, err1 := iperf(p.addr, false)
				down, err2 := iperf(p.addr, true)
				if err := errors.Join(err1, err2); err != nil {
					t.Fatal(err)
				}
				add(rowKey{cond, p.name, "iperf3"}, up, down)
			}
			for _, w := range workloads {
				for _, p := range order {
					out, err := s3(p.addr+":9000", "bench", "bench", w.size, w.count)
					var put, get float64
					if _, serr := fmt.Sscanf(out, "%f %f", &put, &get); err != nil || serr != nil || !(put > 0) || !(get > 0) {
						t.Fatalf("bench %s %s shaping %s: %q %v", p.name, w.name, cond, out, err)
					}
					add(rowKey{cond, p.name, w.name}, put, get)
				}
			}
		}
	}
	shape("")
	load1, _ := os.ReadFile("/proc/loadavg")
	var b strings.Builder
	fmt.Fprintf(&b, "\nMB/s, mean of %d rounds; iperf3 is TCP (1 stream, %s s; PUT = client to storage, GET = -R); load average %s at the start, %s at the end\n",
		rounds, iperfSecs, strings.Join(strings.Fields(string(load0))[:3], " "), strings.Join(strings.Fields(string(load1))[:3], " "))
	fmt.Fprintf(&b, "| %-8s | %-10s | %-6s | %9s | %9s |\n", "shaping", "path", "object", "PUT", "GET")
	fmt.Fprintf(&b, "|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 10), strings.Repeat("-", 12), strings.Repeat("-", 8), strings.Repeat("-", 10)+":", strings.Repeat("-", 10)+":")
	rows := []string{"iperf3"}
	for _, w := range workloads {
		rows = append(rows, w.name)
	}
	for _, cond := range conditions {
		for _, w := range rows {
			for _, p := range paths {
				r := res[rowKey{cond, p.name, w}]
				fmt.Fprintf(&b, "| %-8s | %-10s | %-6s | %9.1f | %9.1f |\n", cond, p.name, w, mean(r.put), mean(r.get))
			}
			m, u := res[rowKey{cond, "mesh", w}], res[rowKey{cond, "underlay", w}]
			fmt.Fprintf(&b, "| %-8s | %-10s | %-6s | %8.2fx | %8.2fx |\n", cond, "mesh/under", w, mean(m.put)/mean(u.put), mean(m.get)/mean(u.get))
		}
	}
	t.Log(b.String())
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
