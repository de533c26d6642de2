package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/netnslab"
)

// storageKill is what the kill -9 test needs of TestStorage's lab.
type storageKill struct {
	ns, stIP  string // the storage node's namespace and mesh IP
	bin, cfg  string // tunnelmesh-storage and its config, to restart it
	s3tool    string
	proc      *netnslab.Proc                                   // the running tunnelmesh-storage
	s3        func(args ...string) (string, error)             // s3tool on a node with credentials
	runClient func(name string, args ...string) *netnslab.Proc // s3tool started in the background there
}

// testStorageKill9 kills the storage service (supervisor and SeaweedFS,
// kill -9 both) once while a single PUT is half sent and once while a
// multipart upload has parts stored and another in flight, restarts it, and
// checks that the interrupted object is not visible (HEAD and GET 404, not
// listed) while every completed object (completed: key in bucket mesh ->
// sha256) is intact. It returns the running tunnelmesh-storage.
func testStorageKill9(t *testing.T, l *lab, k storageKill, completed map[string]string) *netnslab.Proc {
	sum, err := k.s3("put", "mesh", "durable/small.bin", fmt.Sprint(1<<20+3))
	if err != nil || len(sum) != 64 {
		t.Fatalf("put durable/small.bin = %q, %v", sum, err)
	}
	completed["durable/small.bin"] = sum
	sum, err = k.s3("multipart", "mesh", "durable/multi.bin", fmt.Sprint(11<<20+5))
	if err != nil || len(sum) != 64 {
		t.Fatalf("multipart durable/multi.bin = %q, %v", sum, err)
	}
	completed["durable/multi.bin"] = sum

	for _, c := range []struct {
		name, key string
		args      []string
	}{
		{"single put", "durable/partial-put.bin", []string{"stall-put", "mesh", "durable/partial-put.bin", fmt.Sprint(32 << 20), fmt.Sprint(8 << 20)}},
		{"multipart upload", "durable/partial-multi.bin", []string{"stall-multipart", "mesh", "durable/partial-multi.bin", "2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			client := k.runClient("stall-"+strings.ReplaceAll(c.name, " ", "-"), c.args...)
			defer client.Kill()
			waitFor(t, 3*time.Minute, c.name+" stalled mid-upload", func() (bool, string) {
				b, _ := os.ReadFile(client.Log)
				if client.Exited() {
					t.Fatalf("%s ended before the kill: %v\n%s", c.name, client.Err(), b)
				}
				return strings.Contains(string(b), "stalled"), string(b)
			})
			k.proc = killStorage(t, l, k)
			// The stalled client's connection is gone with the server.
			client.Kill()
			if out, err := k.s3("stat", "mesh", c.key); err == nil || !strings.Contains(out, "NoSuchKey 404") {
				t.Errorf("HEAD %s after kill -9 and restart = %q, %v; want NoSuchKey 404", c.key, out, err)
			}
			if out, err := k.s3("get", "mesh", c.key); err == nil || !strings.Contains(out, " 404") {
				t.Errorf("GET %s after kill -9 and restart = %q, %v; want 404", c.key, out, err)
			}
			list, err := k.s3("list", "mesh")
			if err != nil {
				t.Fatalf("list mesh after restart: %v", err)
			}
			if strings.Contains(list, "partial") {
				t.Errorf("list mesh after kill -9 and restart shows a partial object:\n%s", list)
			}
			for key, want := range completed {
				if got, err := k.s3("get", "mesh", key); err != nil || got != want {
					t.Errorf("GET %s after kill -9 and restart = %q, %v; want sha256 %s", key, got, err, want)
				}
				if !strings.Contains("\n"+list+"\n", "\n"+key+"\n") {
					t.Errorf("list mesh after restart lacks %s", key)
				}
			}
		})
	}
	// Uploads work again after the restarts.
	sum, err = k.s3("multipart", "mesh", "durable/after.bin", fmt.Sprint(6<<20+1))
	if err != nil || len(sum) != 64 {
		t.Fatalf("multipart after restarts = %q, %v", sum, err)
	}
	if got, err := k.s3("get", "mesh", "durable/after.bin"); err != nil || got != sum {
		t.Errorf("GET durable/after.bin = %q, %v; want %s", got, err, sum)
	}
	return k.proc
}

// killStorage sends SIGKILL to tunnelmesh-storage and its weed child in one
// kill(1) call, waits until neither runs, starts tunnelmesh-storage again
// and waits until it is ready (/healthz on the credentials API).
func killStorage(t *testing.T, l *lab, k storageKill) *netnslab.Proc {
	t.Helper()
	procs := func() map[string][]string {
		out, err := exec.Command("ip", "netns", "pids", k.ns).Output()
		if err != nil {
			t.Fatalf("ip netns pids %s: %v", k.ns, err)
		}
		m := map[string][]string{}
		for _, pid := range strings.Fields(string(out)) {
			comm, err := os.ReadFile("/proc/" + pid + "/comm")
			if err != nil {
				continue
			}
			m[strings.TrimSpace(string(comm))] = append(m[strings.TrimSpace(string(comm))], pid)
		}
		return m
	}
	p := procs()
	sup, weed := p["tunnelmesh-stor"], p["weed"] // comm is cut at 15 bytes
	if len(sup) != 1 || len(weed) != 1 {
		t.Fatalf("want one tunnelmesh-storage and one weed in %s, have %v", k.ns, p)
	}
	if out, err := exec.Command("kill", "-KILL", sup[0], weed[0]).CombinedOutput(); err != nil {
		t.Fatalf("kill -9 %s %s: %v %s", sup[0], weed[0], err, out)
	}
	select {
	case <-k.proc.Done():
	case <-time.After(time.Minute):
		t.Fatalf("tunnelmesh-storage still runs a minute after kill -9")
	}
	waitFor(t, time.Minute, "weed gone after kill -9", func() (bool, string) {
		p := procs()
		return len(p["weed"]) == 0, fmt.Sprint(p)
	})
	proc := l.Start(k.ns, "tunnelmesh-storage", k.bin, "--config", k.cfg, "--log-level", "debug")
	start := time.Now()
	waitFor(t, 3*time.Minute, "tunnelmesh-storage ready after kill -9", func() (bool, string) {
		if proc.Exited() {
			t.Fatalf("tunnelmesh-storage exited after its restart: %v", proc.Err())
		}
		out, err := l.Run(k.ns, 20*time.Second, k.s3tool, "-", "cat", "http://"+k.stIP+":9001/healthz")
		return err == nil && strings.TrimSpace(out) == "ok", fmt.Sprintf("%q %v", out, err)
	})
	t.Logf("tunnelmesh-storage ready %v after its restart", time.Since(start).Round(time.Millisecond))
	return proc
}
