package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/integration/harness"
)

// TestComposeDemo runs the README's main command (make demo, which is
// scripts/demo.sh) under its own Compose project name: it builds the images,
// brings up compose/docker-compose.yml, and fails unless every node reaches
// every other, and unless node2 reaches node1's labelled web container at
// web.node1.mesh:8080 through dockerwatch and node3 does not. Then, from
// outside as a user would: every node's netmap lists the mesh DNS server,
// meshdns answers node names and reverse lookups, the NFS step wrote a file
// from node1 and read it from node3 through nfsd (checkDemoNFS), and the
// monitoring profile's Prometheus scrapes every component over the mesh;
// an object demo.sh stored from node1 is intact on node2 and node3.
func TestComposeDemo(t *testing.T) {
	harness.RequireDocker(t)
	if _, err := exec.LookPath("dig"); err != nil {
		t.Fatalf("dig (Debian dnsutils) is needed: %v", err)
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	project := fmt.Sprintf("tmdemo%d", time.Now().UnixNano()%1e6)
	// Prometheus's API on a free host port, so a demo already running on
	// this machine (on 9090) does not collide with the test's.
	promPort := freeTCPPort(t)
	env := append(os.Environ(), "COMPOSE_PROJECT_NAME="+project, "TUNNELMESH_PROMETHEUS_PORT="+promPort)
	compose := func(ctx context.Context, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "compose.sh"), args...)
		cmd.Dir, cmd.Env = root, env
		return cmd.CombinedOutput()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := compose(ctx, "down", "-v", "--remove-orphans"); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	demo := exec.CommandContext(ctx, filepath.Join(root, "scripts", "demo.sh"))
	demo.Dir, demo.Env = root, env
	var out bytes.Buffer
	demo.Stdout, demo.Stderr = &out, &out
	start := time.Now()
	if err := demo.Run(); err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, out.String())
	}
	t.Logf("demo up and fully reachable in %s", time.Since(start).Round(time.Second))
	if !strings.Contains(out.String(), "pong from node3") {
		t.Fatalf("demo output has no ping answer from node3:\n%s", out.String())
	}
	// dockerwatch: node2 reached node1's web container by name, node3 (not
	// in its tunnelmesh.allow) did not.
	if !strings.Contains(out.String(), "hello from web") || !strings.Contains(out.String(), "node3: refused") {
		t.Fatalf("demo output lacks node2's answer from web.node1.mesh:8080 or node3's refusal:\n%s", out.String())
	}

	type status struct {
		IP    string `json:"ip"`
		Peers []struct {
			Name string `json:"name"`
			IP   string `json:"ip"`
		} `json:"peers"`
	}
	var st status
	b, err := compose(ctx, "exec", "-T", "node1", "tunnelmesh", "status", "--json")
	if err != nil {
		t.Fatalf("node1 status: %v\n%s", err, b)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("node1 status --json: %v\n%s", err, b)
	}
	ips := map[string]string{}
	for _, p := range st.Peers {
		ips[p.Name] = p.IP
	}
	if ips["node2"] == "" || ips["dns"] == "" || ips["files"] == "" {
		t.Fatalf("node1's peers %v lack node2, dns or files", ips)
	}

	// meshdns answers on the dns node's Docker addresses too: ask it from the host.
	id, err := compose(ctx, "ps", "-q", "dns-agent")
	if err != nil {
		t.Fatalf("compose ps: %v\n%s", err, id)
	}
	addrs, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", strings.TrimSpace(string(id))).Output()
	if err != nil {
		t.Fatalf("docker inspect dns-agent: %v", err)
	}
	server := strings.Fields(string(addrs))[0]
	dig := func(args ...string) string {
		var ans string
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			o, _ := exec.CommandContext(ctx, "dig", append([]string{"+short", "+time=1", "+tries=1", "@" + server}, args...)...).Output()
			if ans = strings.TrimSpace(string(o)); ans != "" {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		return ans
	}
	if got := dig("node2.mesh"); got != ips["node2"] {
		t.Errorf("dig node2.mesh = %q, want %s", got, ips["node2"])
	}
	if got := dig("-x", st.IP); got != "node1.mesh." {
		t.Errorf("dig -x %s = %q, want node1.mesh.", st.IP, got)
	}

	// Every node resolves .mesh through meshdns: the agent put the dns node's
	// mesh address first in the container's resolver configuration.
	cid, err := compose(ctx, "ps", "-q", "node1")
	if err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if o, err := exec.CommandContext(ctx, "docker", "cp", strings.TrimSpace(string(cid))+":/etc/resolv.conf", resolv).CombinedOutput(); err != nil {
		t.Fatalf("docker cp resolv.conf: %v\n%s", err, o)
	}
	conf, _ := os.ReadFile(resolv)
	if first := firstNameserver(string(conf)); first != ips["dns"] {
		t.Errorf("node1's first nameserver = %q, want the dns node %s:\n%s", first, ips["dns"], conf)
	}

	checkDemoNFS(ctx, t, compose, out.String(), ips["files"], dig)

	// Storage: demo.sh put an object from node1 and got it on node2 (it
	// compares the sha256 itself); node3, on the other network, gets it too,
	// and storage.mesh names the storage node.
	checkComposeStorage(ctx, t, out.String(), ips, dig, compose)

	// The monitoring profile: Prometheus, a mesh member, found every target
	// through the registry (demo.sh waited for that); observability's live
	// check then runs against it: every target up, every alert rule loaded
	// and healthy, every dashboard query evaluating, every metric a panel
	// or alert uses scraped from the real components.
	if !strings.Contains(out.String(), "Prometheus: ") {
		t.Fatalf("demo output does not report Prometheus's targets:\n%s", out.String())
	}
	live := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^TestLiveMesh$", "-v", "./internal/promrun")
	live.Dir = filepath.Join(root, "observability")
	live.Env = append(os.Environ(), "GOWORK=off", "TUNNELMESH_PROMETHEUS_URL=http://127.0.0.1:"+promPort)
	lo, err := live.CombinedOutput()
	if err != nil || !strings.Contains(string(lo), "--- PASS: TestLiveMesh") {
		t.Fatalf("observability TestLiveMesh against the demo's Prometheus: %v\n%s", err, lo)
	}
}

func firstNameserver(conf string) string {
	for _, line := range strings.Split(conf, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			return f[1]
		}
	}
	return ""
}

// freeTCPPort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freeTCPPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// checkDemoNFS checks the demo's NFS step (scripts/demo-nfs.sh): node3 read
// back what node1 wrote through libnfs over the mesh, the mount line is
// printed, meshdns answers nfs.mesh with the files node's address, and the
// file sits in nfsd's exported volume, owned by nobody (the export's
// default owner: the client's root is squashed).
func checkDemoNFS(ctx context.Context, t *testing.T, compose func(context.Context, ...string) ([]byte, error),
	out, filesIP string, dig func(...string) string) {
	t.Helper()
	const mountLine = "mount -t nfs -o vers=3,proto=tcp,mountproto=tcp,nolock nfs.mesh:/shared /mnt"
	if !strings.Contains(out, mountLine) {
		t.Errorf("demo output lacks the mount line %q:\n%s", mountLine, out)
	}
	m := regexp.MustCompile(`(?m)^NFS: node3 read what node1 wrote: (hello from node1 over the mesh, (\S+))$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("demo output has no NFS read-back by node3:\n%s", out)
	}
	msg, name := m[1], "hello-from-node1-"+m[2]+".txt"
	if got := dig("nfs.mesh"); got != filesIP {
		t.Errorf("dig nfs.mesh = %q, want the files node %s", got, filesIP)
	}

	id, err := compose(ctx, "ps", "-q", "nfsd")
	if err != nil || strings.TrimSpace(string(id)) == "" {
		t.Fatalf("compose ps nfsd: %v\n%s", err, id)
	}
	// The nfsd image is FROM scratch: docker cp (a tar stream) reads the file.
	arch, err := exec.CommandContext(ctx, "docker", "cp", strings.TrimSpace(string(id))+":/srv/nfs/shared/"+name, "-").Output()
	if err != nil {
		t.Fatalf("docker cp nfsd:/srv/nfs/shared/%s: %v", name, err)
	}
	tr := tar.NewReader(bytes.NewReader(arch))
	h, err := tr.Next()
	if err != nil {
		t.Fatalf("docker cp of %s: %v", name, err)
	}
	body, err := io.ReadAll(tr)
	if err != nil {
		t.Fatalf("docker cp of %s: %v", name, err)
	}
	if string(body) != msg+"\n" {
		t.Errorf("%s in nfsd's volume = %q, want %q", name, body, msg+"\n")
	}
	if h.Uid != 65534 || h.Gid != 65534 {
		t.Errorf("%s in nfsd's volume owned by %d:%d, want 65534:65534 (squashed to nobody)", name, h.Uid, h.Gid)
	}
}

// checkComposeStorage checks demo.sh's storage step: its output reports the
// object put on node1 and got intact on node2 and prints the commands to
// try; node3 gets the same bytes; meshdns answers storage.mesh with store1's
// mesh address.
func checkComposeStorage(ctx context.Context, t *testing.T, out string, ips map[string]string, dig func(...string) string,
	compose func(context.Context, ...string) ([]byte, error)) {
	t.Helper()
	m := regexp.MustCompile(`storage: put on node1, got on node2, sha256 ([0-9a-f]{64}) intact`).FindStringSubmatch(out)
	if m == nil {
		t.Errorf("demo output does not report the storage put and get:\n%s", out)
		return
	}
	for _, want := range []string{"put s3://mesh/demo/random.bin: 1048576 bytes", "tunnelmesh storage get mesh/hello.txt -", "demo/random.bin\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if ips["store1"] == "" {
		t.Errorf("node1's peers %v lack store1", ips)
		return
	}
	// exec's stdout only: the summary line goes to stderr. node3 is on
	// net-b only and its resolver is meshdns first: it finds the storage
	// node by asking the coordinator, by that name, which only its own
	// Docker resolver answers with an address on net-b.
	cid, err := compose(ctx, "ps", "-q", "node3")
	if err != nil {
		t.Fatalf("compose ps node3: %v\n%s", err, cid)
	}
	cmd := exec.CommandContext(ctx, "docker", "exec", strings.TrimSpace(string(cid)), "tunnelmesh", "storage", "get",
		"mesh/demo/random.bin", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if got := fmt.Sprintf("%x", sha256.Sum256(b)); err != nil || got != m[1] {
		t.Errorf("node3 storage get = %d bytes sha256 %s, %v %s; want sha256 %s", len(b), got, err, stderr.String(), m[1])
	}
	if got := dig("storage.mesh"); got != ips["store1"] {
		t.Errorf("dig storage.mesh = %q, want store1's %s", got, ips["store1"])
	}
}
