package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
)

// needTools fails under CI (which installs them with scripts/install-deps.sh)
// and skips elsewhere when a command is missing.
func needTools(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("needs %s (scripts/install-deps.sh installs it): %v", c, err)
			}
			t.Skipf("needs %s: apt-get install -y --no-install-recommends libnfs-utils (scripts/install-deps.sh)", c)
		}
	}
}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tunnelmesh-nfsd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// nfsdLab is tunnelmesh-nfsd running against the fake registry on
// loopback: the mesh prefix is 127.0.0.0/8, so the nfsd node is 127.0.0.1,
// and a loopback client (whose source is 127.0.0.1) is that node, named
// "files", with the grants it has.
type nfsdLab struct {
	dir  string // temporary directory: exports, config, credentials
	port int
	log  *bytes.Buffer
}

// startNFSD makes the directories dirs under the lab's directory and runs
// the binary with the given exports section (YAML list items under
// "exports:", DIR standing for the lab's directory).
func startNFSD(t *testing.T, exports string, dirs ...string) *nfsdLab {
	t.Helper()
	return startNFSDArgs(t, []string{"-metrics-listen", "off"}, exports, dirs...)
}

// startNFSDArgs is startNFSD with more command line arguments.
func startNFSDArgs(t *testing.T, args []string, exports string, dirs ...string) *nfsdLab {
	t.Helper()
	bin := build(t)
	dir := t.TempDir()
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fake := registrytest.New(netip.MustParsePrefix("127.0.0.0/8"))
	t.Cleanup(fake.Close)
	key, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	creds, join, err := fake.AddNode("files", key)
	if err != nil {
		t.Fatal(err)
	}
	if join.IP != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("nfsd node's mesh address = %s, want 127.0.0.1", join.IP)
	}
	creds.KeyFile = filepath.Join(dir, "node.key")
	if err := key.Save(creds.KeyFile); err != nil {
		t.Fatal(err)
	}
	if err := creds.Save(filepath.Join(dir, "node.credentials")); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	// No port mapper: it would take the host's port 111.
	cfg := "credentials: node.credentials\nportmap: false\nport: " + strconv.Itoa(port) + "\nexports:\n" + strings.ReplaceAll(exports, "DIR", dir)
	cfgPath := filepath.Join(dir, "nfsd.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &nfsdLab{dir: dir, port: port, log: &bytes.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{"-config", cfgPath, "-log-level", "debug"}, args...)...)
	cmd.Stdout, cmd.Stderr = l.log, l.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("tunnelmesh-nfsd output:\n%s", l.log.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("nfsd never listened on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBinaryWithLibnfs runs tunnelmesh-nfsd on loopback (see nfsdLab) and
// uses Debian's libnfs-utils against it.
func TestBinaryWithLibnfs(t *testing.T) {
	needTools(t, "nfs-ls", "nfs-cp", "nfs-cat")
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	l := startNFSD(t, `
  - name: shared
    dir: DIR/shared
    allow: {read_write: [files]}
  - name: locked
    dir: DIR/locked
    allow: {read_write: [someone-else]}
`, "shared", "locked")
	dir, port := l.dir, l.port
	shared, locked := filepath.Join(dir, "shared"), filepath.Join(dir, "locked")
	url := func(export, p string) string {
		return "nfs://127.0.0.1/" + export + p + "?nfsport=" + strconv.Itoa(port) + "&mountport=" + strconv.Itoa(port)
	}
	run := func(name string, args ...string) (string, error) {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(c, name, args...).CombinedOutput()
		return string(out), err
	}

	// nfs-cp of 256 MiB up and back, sha256 intact.
	data := make([]byte, 256<<20+123)
	rand.Read(data)
	src := filepath.Join(dir, "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, err := run("nfs-cp", src, url("shared", "/up.bin")); err != nil {
		t.Fatalf("nfs-cp up: %v\n%s", err, out)
	}
	up := time.Since(start)
	back := filepath.Join(dir, "back.bin")
	start = time.Now()
	if out, err := run("nfs-cp", url("shared", "/up.bin"), back); err != nil {
		t.Fatalf("nfs-cp back: %v\n%s", err, out)
	}
	t.Logf("nfs-cp of %d MiB on loopback: up %v, back %v", len(data)>>20, up.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	got, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("round trip: %d bytes back, sha256 differs from the %d sent", len(got), len(data))
	}
	onDisk, _ := os.ReadFile(filepath.Join(shared, "up.bin"))
	if !bytes.Equal(onDisk, data) {
		t.Fatal("file in the export differs from what nfs-cp sent")
	}
	// nfs-ls lists it; nfs-cat reads a small file.
	if err := os.WriteFile(filepath.Join(shared, "hello.txt"), []byte("hello over nfs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run("nfs-ls", url("shared", ""))
	if err != nil || !strings.Contains(out, "up.bin") || !strings.Contains(out, "hello.txt") {
		t.Fatalf("nfs-ls = %v\n%s", err, out)
	}
	if out, err := run("nfs-cat", url("shared", "/hello.txt")); err != nil || out != "hello over nfs\n" {
		t.Fatalf("nfs-cat = %q, %v", out, err)
	}
	// An export this node has no grant on is refused.
	if err := os.WriteFile(filepath.Join(locked, "secret"), []byte("no"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run("nfs-ls", url("locked", "")); err == nil || strings.Contains(out, "secret") {
		t.Fatalf("nfs-ls of an export without a grant = %v\n%s", err, out)
	}
	if out, err := run("nfs-cat", url("locked", "/secret")); err == nil || strings.Contains(out, "no") && !strings.Contains(out, "Failed") && !strings.Contains(out, "failed") {
		t.Fatalf("nfs-cat of an export without a grant = %v\n%s", err, out)
	}
}
