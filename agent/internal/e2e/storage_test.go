package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/netnslab"
)

var (
	storageOnce sync.Once
	storageBins map[string]string
	storageErr  error
)

// buildStorage compiles tunnelmesh-storage and the lab's S3 client s3tool
// (module storage, next to agent in the repository) once per test binary.
func buildStorage(t *testing.T) (storage, s3tool string) {
	t.Helper()
	storageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tunnelmesh-e2e-storage-")
		if err != nil {
			storageErr = err
			return
		}
		src, err := filepath.Abs(filepath.Join("..", "..", "..", "storage"))
		if err != nil {
			storageErr = err
			return
		}
		storageBins = map[string]string{}
		for name, pkg := range map[string]string{"tunnelmesh-storage": "./cmd/tunnelmesh-storage", "s3tool": "./internal/e2e/s3tool"} {
			out := filepath.Join(dir, name)
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = src
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				storageErr = fmt.Errorf("go build %s: %v\n%s", name, err, b)
				return
			}
			storageBins[name] = out
		}
	})
	if storageErr != nil {
		t.Fatal(storageErr)
	}
	return storageBins["tunnelmesh-storage"], storageBins["s3tool"]
}

// weedBinary returns the SeaweedFS binary storage/scripts/build-weed.sh
// built. Missing, the test skips, except under CI=true, where it fails:
// scripts/install-deps.sh builds it.
func weedBinary(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "..", "storage", "scripts", "build-weed.sh"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script, "--print-path").Output()
	if err != nil {
		t.Fatalf("%s --print-path: %v", script, err)
	}
	path := strings.TrimSpace(string(out))
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("SeaweedFS binary %s missing under CI: scripts/install-deps.sh builds it (%s)", path, script)
		}
		t.Skipf("needs the SeaweedFS binary %s: run %s (several minutes, once)", path, script)
	}
	return path
}

type s3creds struct {
	ID     string `json:"AWS_ACCESS_KEY_ID"`
	Secret string `json:"AWS_SECRET_ACCESS_KEY"`
	Region string `json:"AWS_REGION"`
	URL    string `json:"AWS_ENDPOINT_URL"`
}

// TestStorage is issue 14's lab: a coordinator with the default policy; a
// storage node (tagged storage, --advertise-storage) with tunnelmesh-storage
// beside its agent; nodes a and b. Each node gets its own credentials with
// `tunnelmesh storage credentials`; a puts, b gets, sha256-intact, over the
// mesh, multipart, range and presigned GET, and the same with Debian's
// awscli and s3cmd (storage_cli_test.go); a wrong secret, a tampered
// presigned URL and a bucket outside the grant are refused; nothing answers on
// the storage node's underlay address; b's credentials are refused soon after
// b is removed; only a node tagged monitoring reads the metrics; kill -9 of
// the storage service (supervisor and SeaweedFS) during a put and during a
// multipart upload leaves no partial object and the completed ones intact;
// SIGTERM stops the storage service cleanly.
func TestStorage(t *testing.T) {
	weed := weedBinary(t)
	l := newLab(t)
	storageBin, s3tool := buildStorage(t)

	cns := l.addHost("c", 1)
	nss := map[string]string{}
	for i, h := range []string{"sta", "nodea", "nodeb", "mon"} {
		nss[h] = l.addHost(h, 11+i)
	}
	stUnderlay := "10.99.0.11"
	cfgPath := l.defaultPolicyCoordinator(cns, "coord-st", coordIP, "debug")
	tok := l.adminToken(cns, cfgPath)
	stTok := l.adminToken(cns, cfgPath, "--tag", "storage")
	monTok := l.adminToken(cns, cfgPath, "--tag", "monitoring")

	st := l.join(nss["sta"], "sta", "sta", "", coordURL, stTok, "--advertise-storage", "--dns=false")
	stIP := l.waitStatus(st, 20*time.Second, "joined", func(s localapi.Status) bool { return s.IP.IsValid() }).IP.String()
	stCfg := filepath.Join(l.Dir(), "storage.yaml")
	if err := os.WriteFile(stCfg, []byte(fmt.Sprintf(
		"credentials: %s\ndata_dir: %s\nweed:\n  binary: %s\n  volume_max: 24\n  volume_size_mb: 256\n",
		filepath.Join(st.stateDir, "credentials.json"), filepath.Join(l.Dir(), "storage-data"), weed)), 0o600); err != nil {
		t.Fatal(err)
	}
	stProc := l.Start(nss["sta"], "tunnelmesh-storage", storageBin, "--config", stCfg, "--log-level", "debug")

	nodea := l.join(nss["nodea"], "nodea", "nodea", "", coordURL, tok, "--dns=false")
	nodeb := l.join(nss["nodeb"], "nodeb", "nodeb", "", coordURL, tok, "--dns=false")
	mon := l.join(nss["mon"], "mon", "mon", "", coordURL, monTok, "--dns=false")
	for _, n := range []*node{nodea, nodeb, mon} {
		l.waitStatus(n, 30*time.Second, "sees the storage node", func(s localapi.Status) bool { return slicesContains(peerNames(s), "sta") })
	}

	creds := func(n *node) s3creds {
		t.Helper()
		var c s3creds
		var last string
		deadline := time.Now().Add(3 * time.Minute) // first start of SeaweedFS on a busy machine
		for time.Now().Before(deadline) {
			if stProc.Exited() {
				t.Fatalf("tunnelmesh-storage exited: %v", stProc.Err())
			}
			out, err := l.Run(n.ns, 60*time.Second, l.bin, "storage", "credentials", "--json", "--state-dir", n.stateDir)
			if err == nil && json.Unmarshal([]byte(out), &c) == nil && c.ID != "" {
				return c
			}
			last = fmt.Sprintf("%q %v", out, err)
			time.Sleep(time.Second)
		}
		t.Fatalf("%s: storage credentials: %s", n.name, last)
		return c
	}
	endpoint := stIP + ":9000"
	s3 := func(n *node, c s3creds, args ...string) (string, error) {
		cmd := append([]string{"env", "AWS_ACCESS_KEY_ID=" + c.ID, "AWS_SECRET_ACCESS_KEY=" + c.Secret, "AWS_REGION=" + c.Region,
			s3tool, endpoint}, args...)
		out, err := l.Run(n.ns, 3*time.Minute, cmd...)
		if err != nil {
			err = errors.New(strings.ReplaceAll(err.Error(), c.Secret, "<secret>"))
		}
		return strings.TrimSpace(out), err
	}

	ca := creds(nodea)
	cb := creds(nodeb)
	if ca.ID == cb.ID || ca.Secret == cb.Secret {
		t.Fatalf("nodea and nodeb got the same credentials")
	}
	if ca.URL != "http://storage.mesh:9000" || ca.Region != "us-east-1" {
		t.Errorf("credentials endpoint %q region %q, want http://storage.mesh:9000 us-east-1", ca.URL, ca.Region)
	}

	completed := map[string]string{} // key in bucket mesh -> sha256, checked after kill -9
	t.Run("put on a, get on b", func(t *testing.T) {
		var sum string
		waitFor(t, 2*time.Minute, "put from nodea", func() (bool, string) {
			out, err := s3(nodea, ca, "put", "mesh", "dir/hello.bin", fmt.Sprint(3<<20+17))
			sum = out
			return err == nil && len(out) == 64, fmt.Sprintf("%q %v", out, err)
		})
		completed["dir/hello.bin"] = sum
		got, err := s3(nodeb, cb, "get", "mesh", "dir/hello.bin")
		if err != nil || got != sum {
			t.Fatalf("get on nodeb = %q, %v; want sha256 %s", got, err, sum)
		}
		if out, err := s3(nodeb, cb, "list", "mesh"); err != nil || out != "dir/hello.bin" {
			t.Errorf("list on nodeb = %q, %v", out, err)
		}
	})
	t.Run("multipart, range and presigned GET", func(t *testing.T) {
		sum, err := s3(nodea, ca, "multipart", "mesh", "big.bin", fmt.Sprint(12<<20+5))
		if err != nil || len(sum) != 64 {
			t.Fatalf("multipart put on nodea = %q, %v", sum, err)
		}
		completed["big.bin"] = sum
		if got, err := s3(nodeb, cb, "get", "mesh", "big.bin"); err != nil || got != sum {
			t.Errorf("get on nodeb = %q, %v; want %s", got, err, sum)
		}
		if out, err := s3(nodeb, cb, "rangecheck", "mesh", "big.bin", "5000000", "7000000"); err != nil || out != "ok 2000001" {
			t.Errorf("range GET on nodeb = %q, %v", out, err)
		}
		url, err := s3(nodea, ca, "presign", "mesh", "big.bin")
		if err != nil || !strings.HasPrefix(url, "http://"+endpoint+"/mesh/big.bin?") {
			t.Fatalf("presign on nodea = %q, %v", url, err)
		}
		// Fetched by a node with no credentials of its own in use.
		if out, err := l.Run(nodeb.ns, time.Minute, s3tool, "-", "fetch", url); strings.TrimSpace(out) != sum {
			t.Errorf("presigned GET on nodeb = %q, %v; want %s", out, err, sum)
		}
		tampered := strings.Replace(url, "X-Amz-Expires=3600", "X-Amz-Expires=7200", 1)
		if tampered == url {
			t.Fatalf("presigned URL without X-Amz-Expires=3600: %s", url)
		}
		if out, _ := l.Run(nodeb.ns, time.Minute, s3tool, "-", "fetch", tampered); !strings.Contains(out, "fetch 403") {
			t.Errorf("presigned URL with a changed expiry = %q, want 403", out)
		}
	})
	t.Run("awscli and s3cmd", func(t *testing.T) { testS3CLIs(t, l, endpoint, s3tool, nodea, nodeb) })
	t.Run("wrong secret is refused", func(t *testing.T) {
		bad := ca
		bad.Secret = "x" + ca.Secret[1:]
		out, err := s3(nodea, bad, "get", "mesh", "dir/hello.bin")
		if err == nil || !strings.Contains(out, " 403") {
			t.Errorf("get with a wrong secret = %q, %v; want an s3 error 403", out, err)
		}
	})
	t.Run("no other bucket", func(t *testing.T) {
		out, err := s3(nodea, ca, "put", "other", "x", "10")
		if err == nil || !strings.Contains(out, " 403") {
			t.Errorf("put into bucket other = %q, %v; want 403", out, err)
		}
	})
	t.Run("nothing on the underlay", func(t *testing.T) {
		for _, port := range []string{"9000", "9001", "9104", "19000", "8888", "9333", "8080"} {
			if out, err := l.Run(nss["nodea"], 10*time.Second, "bash", "-c", "exec 3<>/dev/tcp/"+stUnderlay+"/"+port); err == nil {
				t.Errorf("connect to the storage node's underlay %s:%s succeeded: %s", stUnderlay, port, out)
			}
		}
		out, err := l.Run(nss["sta"], 10*time.Second, "ss", "-ltnH")
		if err != nil {
			t.Fatalf("ss: %v", err)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			local := f[3]
			if !strings.HasPrefix(local, "127.0.0.1:") && !strings.HasPrefix(local, stIP+":") {
				t.Errorf("storage namespace listens on %s (want loopback or the mesh address %s only)", local, stIP)
			}
		}
	})
	t.Run("policy grants, live", func(t *testing.T) {
		apply := func(name, storage string) time.Time {
			t.Helper()
			return l.applyDefaultPolicyWith(cns, cfgPath, name, storage)
		}
		// Bucket logs for nodea only: created by the service, usable by
		// nodea, refused to nodeb.
		apply("storage-logs", "  - {name: only nodea writes logs, from: node-a, storage_deny: [write:logs], storage_accept: [write:mesh]}\n"+
			"storage:\n  buckets:\n    mesh: {read: \"*\", write: \"*\", list: \"*\"}\n    logs: {read: [nodea], write: [nodea], list: [nodea]}\n")
		waitFor(t, 2*time.Minute, "nodea puts into bucket logs", func() (bool, string) {
			out, err := s3(nodea, ca, "put", "logs", "a.bin", "1000")
			return err == nil && len(out) == 64, fmt.Sprintf("%q %v", out, err)
		})
		if out, err := s3(nodeb, cb, "put", "logs", "b.bin", "1000"); err == nil || !strings.Contains(out, " 403") {
			t.Errorf("nodeb put into logs = %q, %v; want 403", out, err)
		}
		if out, err := s3(nodeb, cb, "get", "logs", "a.bin"); err == nil || !strings.Contains(out, " 403") {
			t.Errorf("nodeb get from logs = %q, %v; want 403", out, err)
		}
		if _, err := s3(nodeb, cb, "put", "mesh", "b.bin", "1000"); err != nil {
			t.Errorf("nodeb put into mesh: %v", err)
		}
		// nodeb loses write on mesh: refused soon after the apply, while
		// it may still read.
		start := apply("storage-readonly", "storage:\n  buckets:\n    mesh: {read: \"*\", write: [nodea], list: \"*\"}\n")
		waitFor(t, 30*time.Second, "nodeb's write to mesh refused", func() (bool, string) {
			out, err := s3(nodeb, cb, "put", "mesh", "b2.bin", "1000")
			return err != nil && strings.Contains(out, " 403"), fmt.Sprintf("%q %v", out, err)
		})
		t.Logf("nodeb's write refused %v after policy apply", time.Since(start).Round(time.Millisecond))
		if _, err := s3(nodeb, cb, "get", "mesh", "b.bin"); err != nil {
			t.Errorf("nodeb read of mesh after losing write: %v", err)
		}
		if _, err := s3(nodea, ca, "put", "mesh", "a2.bin", "1000"); err != nil {
			t.Errorf("nodea put into mesh: %v", err)
		}
		// Back to the default: every member reads and writes mesh.
		apply("storage-default", "")
		waitFor(t, 30*time.Second, "nodeb writes mesh again", func() (bool, string) {
			out, err := s3(nodeb, cb, "put", "mesh", "b3.bin", "1000")
			return err == nil, fmt.Sprintf("%q %v", out, err)
		})
	})
	t.Run("removed node is refused", func(t *testing.T) {
		if _, err := s3(nodea, cb, "get", "mesh", "dir/hello.bin"); err != nil {
			t.Fatalf("nodeb's credentials before removal: %v", err)
		}
		start := time.Now()
		l.Must("ip", "netns", "exec", cns, l.bin, "admin", "--config", cfgPath, "nodes", "remove", "nodeb")
		// Used from nodea, which stays in the mesh: only the key is revoked.
		waitFor(t, 30*time.Second, "nodeb's credentials refused", func() (bool, string) {
			out, err := s3(nodea, cb, "get", "mesh", "dir/hello.bin")
			return err != nil && strings.Contains(out, " 403"), fmt.Sprintf("%q %v", out, err)
		})
		t.Logf("nodeb's S3 credentials refused %v after its removal (issue target: within 2 s)", time.Since(start).Round(time.Millisecond))
		if _, err := s3(nodea, ca, "get", "mesh", "dir/hello.bin"); err != nil {
			t.Errorf("nodea's credentials after nodeb's removal: %v", err)
		}
	})
	t.Run("metrics and health", func(t *testing.T) {
		metricsURL := "http://" + stIP + ":9104/metrics"
		var out string
		waitFor(t, time.Minute, "mon (tag:monitoring) reads the storage metrics", func() (bool, string) {
			var err error
			out, err = l.Run(mon.ns, 20*time.Second, s3tool, "-", "cat", metricsURL)
			return err == nil, fmt.Sprintf("%q %v", out, err)
		})
		for _, want := range []string{
			"tunnelmesh_storage_credentials_issued_total ",
			"tunnelmesh_storage_credentials_revoked_total 1",
			"tunnelmesh_storage_weed_restarts_total 0",
		} {
			if !strings.Contains(out, want) {
				var got []string
				for _, line := range strings.Split(out, "\n") {
					if strings.HasPrefix(line, "tunnelmesh_storage_") {
						got = append(got, line)
					}
				}
				t.Errorf("metrics lack %q; have %q", want, got)
			}
		}
		if out, err := l.Run(nss["nodea"], time.Minute, s3tool, "-", "cat", "http://"+stIP+":9001/healthz"); err != nil || strings.TrimSpace(out) != "ok" {
			t.Errorf("healthz = %q, %v", out, err)
		}
		// A member without tag:monitoring: its SYN to 9104 is dropped by the
		// storage node's filter, and the credentials API has no /metrics.
		if out, err := l.Run(nodea.ns, 10*time.Second, s3tool, "-", "cat", metricsURL); err == nil || strings.Contains(out, "tunnelmesh_storage_") {
			t.Errorf("nodea (no tag:monitoring) read %s: %q, %v", metricsURL, out, err)
		}
		if out, err := l.Run(nodea.ns, time.Minute, s3tool, "-", "cat", "http://"+stIP+":9001/metrics"); err == nil || !strings.Contains(out, "fetch 404") {
			t.Errorf("nodea GET :9001/metrics = %q, %v; want 404", out, err)
		}
	})
	t.Run("kill -9 during a put and a multipart upload", func(t *testing.T) {
		stProc = testStorageKill9(t, l, storageKill{ns: nss["sta"], stIP: stIP, bin: storageBin, cfg: stCfg, s3tool: s3tool,
			proc: stProc, s3: func(args ...string) (string, error) { return s3(nodea, ca, args...) },
			runClient: func(name string, args ...string) *netnslab.Proc {
				return l.Start(nodea.ns, name, append([]string{"env", "AWS_ACCESS_KEY_ID=" + ca.ID, "AWS_SECRET_ACCESS_KEY=" + ca.Secret,
					"AWS_REGION=" + ca.Region, s3tool, endpoint}, args...)...)
			}}, completed)
	})

	// Idle RSS of the storage node's processes, for the storage README.
	if pids, err := exec.Command("ip", "netns", "pids", nss["sta"]).Output(); err == nil {
		for _, pid := range strings.Fields(string(pids)) {
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			status, _ := os.ReadFile("/proc/" + pid + "/status")
			for _, line := range strings.Split(string(status), "\n") {
				if strings.HasPrefix(line, "VmRSS:") {
					t.Logf("storage node process %s: RSS %s", strings.TrimSpace(string(comm)), strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")))
				}
			}
		}
	}

	// SeaweedFS takes tens of seconds to stop cleanly.
	start := time.Now()
	if err := stProc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stProc.Done():
		if err := stProc.Err(); err != nil {
			t.Errorf("tunnelmesh-storage exit after SIGTERM: %v", err)
		}
		t.Logf("tunnelmesh-storage stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(2 * time.Minute):
		t.Errorf("tunnelmesh-storage did not stop within 2 minutes of SIGTERM")
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
