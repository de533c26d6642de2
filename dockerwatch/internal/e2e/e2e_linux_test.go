//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/enginetest"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

const meshIP = "100.64.0.5"

func must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// inNetns runs fn on an OS thread switched into namespace ns.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread exits with the goroutine
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// stubAgent serves the agent's local API calls dockerwatch makes, on a unix
// socket: the node's mesh address, and the services set (kept as the agent
// keeps them).
type stubAgent struct {
	sock string
	mu   sync.Mutex
	svcs []api.Service
	sets int
}

func newStubAgent(t *testing.T) *stubAgent {
	a := &stubAgent{sock: filepath.Join(t.TempDir(), "tunnelmesh.sock")}
	ln, err := net.Listen("unix", a.sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"name":"node1","ip":%q,"peers":[]}`, meshIP)
	})
	mux.HandleFunc("PUT /v1/services", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Owner    string        `json:"owner"`
			Services []api.Service `json:"services"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Owner != "dockerwatch" {
			http.Error(w, `{"error":"bad request"}`, 400)
			return
		}
		a.mu.Lock()
		a.svcs, a.sets = req.Services, a.sets+1
		a.mu.Unlock()
		w.Write([]byte(`{}`))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

func (a *stubAgent) services() []api.Service {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.svcs)
}

type env struct {
	t               *testing.T
	prefix          string
	agentNS, peerNS string
	network         string
	bin, cfg        string
	agent           *stubAgent
	containers      []string
}

func setup(t *testing.T) *env {
	testenv.NeedRoot(t, "creates network namespaces and installs nftables rules in them")
	testenv.NeedCommand(t, "docker", "apt-get install docker.io")
	testenv.NeedCommand(t, "nft", "apt-get install nftables")
	testenv.NeedCommand(t, "ip", "apt-get install iproute2")
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.APIVersion}}").CombinedOutput(); err != nil {
		testenv.Missing(t, "needs a running Docker engine: "+strings.TrimSpace(string(out)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := enginetest.BuildImage(ctx); err != nil {
		t.Fatal(err)
	}
	var rb [3]byte
	rand.Read(rb[:])
	e := &env{t: t, prefix: fmt.Sprintf("dwe%x", rb)}
	e.bin = filepath.Join(t.TempDir(), "tunnelmesh-dockerwatch")
	build := exec.Command("go", "build", "-o", e.bin, "../../cmd/tunnelmesh-dockerwatch")
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	e.agentNS, e.peerNS = e.prefix+"a", e.prefix+"p"
	for _, ns := range []string{e.agentNS, e.peerNS} {
		must(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		must(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	// The Docker network, with the upper half of its /24 left to the
	// agent's namespace.
	e.network = e.prefix + "net"
	var subnet string
	for i := 0; ; i++ {
		subnet = fmt.Sprintf("10.213.%d", (int(rb[0])+i)%250)
		out, err := exec.Command("docker", "network", "create", "--driver", "bridge",
			"--subnet", subnet+".0/24", "--ip-range", subnet+".0/25", e.network).CombinedOutput()
		if err == nil {
			break
		}
		if i > 10 || !strings.Contains(string(out), "overlap") {
			t.Fatalf("docker network create: %v: %s", err, out)
		}
	}
	t.Cleanup(func() {
		for _, c := range e.containers {
			exec.Command("docker", "rm", "-f", c).Run()
		}
		exec.Command("docker", "network", "rm", e.network).Run()
	})
	netID := must(t, "docker", "network", "inspect", "--format", "{{.Id}}", e.network)
	bridge := "br-" + netID[:12]
	must(t, "ip", "link", "add", e.prefix+"b", "type", "veth", "peer", "name", e.prefix+"ab", "netns", e.agentNS)
	t.Cleanup(func() { exec.Command("ip", "link", "del", e.prefix+"b").Run() })
	must(t, "ip", "link", "set", e.prefix+"b", "master", bridge, "up")
	must(t, "ip", "-n", e.agentNS, "addr", "add", subnet+".200/24", "dev", e.prefix+"ab")
	must(t, "ip", "-n", e.agentNS, "link", "set", e.prefix+"ab", "up")
	// The peer reaches the node's mesh address over a link of its own, as
	// traffic from the mesh arrives on the agent's TUN device.
	must(t, "ip", "link", "add", e.prefix+"ap", "netns", e.agentNS, "type", "veth", "peer", "name", e.prefix+"pa", "netns", e.peerNS)
	must(t, "ip", "-n", e.agentNS, "addr", "add", "10.201.2.1/24", "dev", e.prefix+"ap")
	must(t, "ip", "-n", e.agentNS, "addr", "add", meshIP+"/32", "dev", e.prefix+"ap")
	must(t, "ip", "-n", e.peerNS, "addr", "add", "10.201.2.2/24", "dev", e.prefix+"pa")
	must(t, "ip", "-n", e.agentNS, "link", "set", e.prefix+"ap", "up")
	must(t, "ip", "-n", e.peerNS, "link", "set", e.prefix+"pa", "up")
	must(t, "ip", "-n", e.peerNS, "route", "add", meshIP+"/32", "via", "10.201.2.1")

	e.agent = newStubAgent(t)
	e.cfg = filepath.Join(t.TempDir(), "dockerwatch.yaml")
	cfg := fmt.Sprintf("agent:\n  socket: %s\nresync_interval: 1m\nlog:\n  level: debug\n", e.agent.sock)
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// dockerwatch is a running tunnelmesh-dockerwatch in the agent's namespace.
type dockerwatch struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan error
}

func (e *env) startDockerwatch() *dockerwatch {
	d := &dockerwatch{logs: &bytes.Buffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command("ip", "netns", "exec", e.agentNS, e.bin, "--config", e.cfg)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	e.t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if e.t.Failed() {
			e.t.Logf("dockerwatch log:\n%s", d.logs)
		}
	})
	return d
}

// stop ends d with sig and waits for it.
func (d *dockerwatch) stop(t *testing.T, sig syscall.Signal) {
	d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("dockerwatch did not exit on %v", sig)
	}
	d.done <- nil // for the cleanup
}

func (e *env) run(name string, args ...string) string {
	e.containers = append(e.containers, name)
	a := append([]string{"docker", "run", "-d", "--name", name, "--network", e.network, "-e", "NAME=" + name}, args...)
	return must(e.t, append(a, enginetest.Image)...)
}

// get fetches http://meshIP:port/ from the peer namespace. The connection
// is made on the thread switched into the namespace (an http.Transport
// would dial from another thread, in the test's namespace).
func (e *env) get(port int) (string, error) {
	var c net.Conn
	err := inNetns(e.peerNS, func() (err error) {
		c, err = net.DialTimeout("tcp", net.JoinHostPort(meshIP, fmt.Sprint(port)), 700*time.Millisecond)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", meshIP); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// waitFor polls cond until it holds, with a generous ceiling, and returns
// how long it took.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%s: not after %v", what, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func (e *env) table() string {
	out, err := exec.Command("ip", "netns", "exec", e.agentNS, "nft", "list", "table", "ip", "tunnelmesh_dockerwatch").CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

func TestDockerwatchEndToEnd(t *testing.T) {
	e := setup(t)
	d := e.startDockerwatch()

	// A labelled container: reachable through the forward.
	web := e.prefix + "-web"
	e.run(web, "--label", "tunnelmesh.expose=8080/tcp", "--label", "tunnelmesh.name=web")
	took := waitFor(t, "web reachable through the forward", func() bool {
		b, err := e.get(8080)
		return err == nil && b == "hello from "+web
	})
	t.Logf("exposed %v after docker run returned", took)
	waitFor(t, "web published to the agent", func() bool {
		return slices.Equal(e.agent.services(), []api.Service{{Name: "web", Protocol: "tcp", Port: 8080}})
	})

	// An unlabelled container with no published ports: never exposed.
	plain := e.prefix + "-plain"
	e.run(plain)
	plainIP := must(t, "docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", plain)
	// A labelled one started after it shows that dockerwatch has seen both.
	api2 := e.prefix + "-api"
	e.run(api2, "--label", "tunnelmesh.name=api", "-e", "HTTP_ADDR=:9000", "--label", "tunnelmesh.expose=9000/tcp")
	waitFor(t, "api reachable on 9000", func() bool {
		b, err := e.get(9000)
		return err == nil && b == "hello from "+api2
	})
	if tbl := e.table(); strings.Contains(tbl, plainIP+":") {
		t.Errorf("the unlabelled container %s (%s) is in the forward:\n%s", plain, plainIP, tbl)
	}

	// Stop: withdrawn.
	must(t, "docker", "stop", "-t", "1", web)
	took = waitFor(t, "web withdrawn after stop", func() bool {
		_, err := e.get(8080)
		return err != nil
	})
	t.Logf("withdrawn %v after docker stop returned", took)
	waitFor(t, "web unpublished", func() bool {
		return slices.Equal(e.agent.services(), []api.Service{{Name: "api", Protocol: "tcp", Port: 9000}})
	})

	// Kill dockerwatch (nothing withdrawn) while containers come and go.
	d.stop(t, syscall.SIGKILL)
	if !strings.Contains(e.table(), "9000") {
		t.Fatalf("the forward was withdrawn by a kill:\n%s", e.table())
	}
	must(t, "docker", "start", web)
	must(t, "docker", "rm", "-f", api2, plain)
	site := e.prefix + "-site"
	e.run(site, "--label", "tunnelmesh.expose=8081/tcp", "-e", "HTTP_ADDR=:8081")
	d = e.startDockerwatch()
	waitFor(t, "state after the restart", func() bool {
		_, errAPI := e.get(9000)
		b, err := e.get(8080)
		b2, err2 := e.get(8081)
		return errAPI != nil && err == nil && b == "hello from "+web && err2 == nil && b2 == "hello from "+site
	})
	wantSvcs := []api.Service{{Name: site, Protocol: "tcp", Port: 8081}, {Name: "web", Protocol: "tcp", Port: 8080}}
	waitFor(t, "services after the restart", func() bool { return slices.Equal(e.agent.services(), wantSvcs) })
	restarted := e.table()

	// A clean stop withdraws everything; a fresh start yields the same.
	d.stop(t, syscall.SIGTERM)
	if tbl := e.table(); tbl != "" {
		t.Errorf("forward after SIGTERM:\n%s\nwant no table", tbl)
	}
	if s := e.agent.services(); len(s) != 0 {
		t.Errorf("services after SIGTERM = %v, want none", s)
	}
	e.startDockerwatch()
	waitFor(t, "fresh start equals the restart", func() bool {
		return e.table() == restarted && slices.Equal(e.agent.services(), wantSvcs)
	})
	if c := strings.Count(restarted, "dnat to"); c != 4 {
		t.Errorf("forward has %d dnat rules, want 4 (2 services x prerouting, output):\n%s", c, restarted)
	}
}
