package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

// TestBinaryAnswersDig builds tunnelmesh-meshdns, runs it against the fake
// registry on 127.0.0.1, and asks it with dig (Debian package dnsutils).
func TestBinaryAnswersDig(t *testing.T) {
	dig := testenv.NeedCommand(t, "dig", "Debian dnsutils; scripts/install-deps.sh installs it")
	if testing.Short() {
		t.Skip("builds the CoreDNS binary; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tunnelmesh-meshdns")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	fake := registrytest.New(netip.Prefix{})
	t.Cleanup(fake.Close)
	creds := addNode(t, fake, "dns", dir) // 100.64.0.1
	addNode(t, fake, "db1", "")           // 100.64.0.2
	addNode(t, fake, "web", "")           // 100.64.0.3
	fake.SetServices("web", api.Service{Name: "http", Protocol: "tcp", Port: 8080})
	fake.SetDNS(api.DNSConfig{Zone: "mesh", Servers: []netip.Addr{netip.MustParseAddr("100.64.0.1")}})

	port := freePort(t)
	corefile := filepath.Join(dir, "Corefile")
	writeCorefile := func(ttl int) {
		t.Helper()
		c := fmt.Sprintf(`. {
    bind 127.0.0.1
    errors
    meshdns mesh 100.64.0.0/10 {
        credentials %s
        ttl %d
    }
    hosts {
        192.0.2.7 other.example
        fallthrough
    }
}
`, creds, ttl)
		if err := os.WriteFile(corefile, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCorefile(30)

	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-conf", corefile, "-dns.port", port)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("tunnelmesh-meshdns output:\n%s", logs.String())
		}
	})

	digq := func(args ...string) string {
		t.Helper()
		all := append([]string{"@127.0.0.1", "-p", port, "+time=1", "+tries=1", "+norec"}, args...)
		out, _ := exec.Command(dig, all...).CombinedOutput()
		return string(out)
	}
	short := func(args ...string) string { return strings.TrimSpace(digq(append(args, "+short")...)) }
	waitFor(t, "db1.mesh to resolve", func() bool { return short("db1.mesh", "A") == "100.64.0.2" })

	status := regexp.MustCompile(`status: (\w+)`)
	tests := []struct {
		name string
		args []string
		want string // +short output, or "status: X" to match the header
	}{
		{"self", []string{"dns.mesh", "A", "+short"}, "100.64.0.1"},
		{"peer, mixed case", []string{"WEB.Mesh", "A", "+short"}, "100.64.0.3"},
		{"reverse", []string{"-x", "100.64.0.2", "+short"}, "db1.mesh."},
		{"SRV", []string{"_http._tcp.web.mesh", "SRV", "+short"}, "0 0 8080 web.mesh."},
		{"service A", []string{"http.web.mesh", "A", "+short"}, "100.64.0.3"},
		{"NS", []string{"mesh", "NS", "+short"}, "dns.mesh."},
		{"over TCP", []string{"db1.mesh", "A", "+tcp", "+short"}, "100.64.0.2"},
		{"unknown", []string{"nope.mesh", "A"}, "status: NXDOMAIN"},
		{"AAAA of a node", []string{"db1.mesh", "AAAA"}, "status: NOERROR"},
		{"unknown address", []string{"-x", "100.64.9.9"}, "status: NXDOMAIN"},
		{"hosts beside meshdns", []string{"other.example", "A", "+short"}, "192.0.2.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := digq(tc.args...)
			if strings.HasPrefix(tc.want, "status: ") {
				if m := status.FindString(out); m != tc.want {
					t.Errorf("dig %s: %q, want %q\n%s", strings.Join(tc.args, " "), m, tc.want, out)
				}
				return
			}
			if got := strings.TrimSpace(out); got != tc.want {
				t.Errorf("dig %s = %q, want %q", strings.Join(tc.args, " "), got, tc.want)
			}
		})
	}
	if out := digq("nope.mesh", "A"); !strings.Contains(out, "flags: qr aa") || !regexp.MustCompile(`mesh\.\s+30\s+IN\s+SOA\s+dns\.mesh\. hostmaster\.mesh\.`).MatchString(out) {
		t.Errorf("dig nope.mesh: want an authoritative NXDOMAIN with the SOA (TTL 30)\n%s", out)
	}

	// Live changes reach the running server.
	addNode(t, fake, "db2", "")
	waitFor(t, "db2.mesh to resolve", func() bool { return short("db2.mesh", "A") == "100.64.0.4" })
	fake.RemoveNode("db1")
	waitFor(t, "db1.mesh to stop resolving", func() bool { return status.FindString(digq("db1.mesh", "A")) == "status: NXDOMAIN" })

	// A reload (SIGUSR1, as CoreDNS does) picks up the new Corefile.
	writeCorefile(7)
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	ttl7 := regexp.MustCompile(`db2\.mesh\.\s+7\s+IN\s+A\s+100\.64\.0\.4`)
	waitFor(t, "TTL 7 after reload", func() bool { return ttl7.MatchString(digq("db2.mesh", "A")) })
}

// addNode registers name with the fake registry; with dir set it also writes
// the node's key and credentials there and returns the credentials path.
func addNode(t *testing.T, fake *registrytest.Fake, name, dir string) string {
	t.Helper()
	key, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	creds, _, err := fake.AddNode(name, key)
	if err != nil {
		t.Fatal(err)
	}
	if dir == "" {
		return ""
	}
	creds.KeyFile = filepath.Join(dir, name+".key")
	if err := key.Save(creds.KeyFile); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".credentials")
	if err := creds.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func freePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			ln.Close()
			return strconv.Itoa(port)
		}
	}
	t.Fatal("no free port for UDP and TCP")
	return ""
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
