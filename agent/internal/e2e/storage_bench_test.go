package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
)

// TestStorageBench is storage/bench: S3 PUT and GET from a node to one
// SeaweedFS reached over the mesh and over the underlay, in the same run,
// alternating which goes first each round; it prints a table. With
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
	polPath := filepath.Join(l.Dir(), "default-policy.yaml")
	if err := os.WriteFile(polPath, policy.DefaultYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(l.Dir(), "coord-sb.yaml")
	cfg := fmt.Sprintf("listen: %s:8443\ndata_dir: %s\nmesh_cidr: 100.64.0.0/16\nstun_listen: %s:3478\nlog_level: info\npolicy_file: %s\n",
		coordIP, filepath.Join(l.Dir(), "coord-sb"), coordIP, polPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l.Start(cns, "coord-sb", l.bin, "coordinator", "--config", cfgPath)
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

	type result struct{ put, get []float64 }
	res := map[string]map[string]*result{} // path -> workload -> results
	workloads := []struct {
		name        string
		size, count string
	}{{"64MiB", strconv.Itoa(64 << 20), "2"}, {"4KiB", "4096", "200"}}
	if smoke {
		workloads[0].name, workloads[0].size, workloads[0].count = "1MiB", strconv.Itoa(1<<20), "1"
		workloads[1].count = "10"
	}
	paths := []struct{ name, addr string }{{"mesh", stIP + ":9000"}, {"underlay", stUnderlay + ":9000"}}
	for r := range rounds {
		order := paths
		if r%2 == 1 {
			order = []struct{ name, addr string }{paths[1], paths[0]}
		}
		for _, w := range workloads {
			for _, p := range order {
				out, err := s3(p.addr, "bench", "bench", w.size, w.count)
				var put, get float64
				if _, serr := fmt.Sscanf(out, "%f %f", &put, &get); err != nil || serr != nil || !(put > 0) || !(get > 0) {
					t.Fatalf("bench %s %s: %q %v", p.name, w.name, out, err)
				}
				if res[p.name] == nil {
					res[p.name] = map[string]*result{}
				}
				if res[p.name][w.name] == nil {
					res[p.name][w.name] = &result{}
				}
				res[p.name][w.name].put = append(res[p.name][w.name].put, put)
				res[p.name][w.name].get = append(res[p.name][w.name].get, get)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-10s %-6s %12s %12s   (MB/s, mean of %d rounds)\n", "path", "object", "PUT", "GET", rounds)
	for _, w := range workloads {
		for _, p := range paths {
			r := res[p.name][w.name]
			fmt.Fprintf(&b, "%-10s %-6s %12.1f %12.1f\n", p.name, w.name, mean(r.put), mean(r.get))
		}
		m, u := res["mesh"][w.name], res["underlay"][w.name]
		fmt.Fprintf(&b, "%-10s %-6s %11.2fx %11.2fx\n", "mesh/under", w.name, mean(m.put)/mean(u.put), mean(m.get)/mean(u.get))
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
