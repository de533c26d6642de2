// Package harness runs TunnelMesh meshes in real containers for the
// black-box integration suite: an Env is a coordinator plus nodes on Docker
// networks of its own, driven only through the `tunnelmesh` CLI inside the
// containers (join, status, ping, admin), as a user would.
//
// Everything an Env creates (containers with their volumes, networks) is
// removed by t.Cleanup; Ryuk (testcontainers' reaper) is off, since its
// image cannot be pulled on our machines.
package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/network"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

// Images the suite runs; scripts/images.sh builds them.
const (
	AgentImage   = "tunnelmesh/agent:dev"
	MeshDNSImage = "tunnelmesh/meshdns:dev"
)

// Paths inside the coordinator container.
const (
	coordConfig = "/etc/tunnelmesh/coordinator.yaml"
	coordPolicy = "/etc/tunnelmesh/policy.yaml"
	// CoordinatorURL is how nodes reach the coordinator (its alias on
	// every network of the Env).
	CoordinatorURL = "https://coordinator:8443"
)

// pingTimeout bounds one `tunnelmesh ping -c 1` (the CLI waits up to 12 s
// for an answer).
const pingTimeout = 20 * time.Second

var skipReason string

// Setup prepares the test process; call it from TestMain before anything
// else. It turns Ryuk off and points testcontainers at 127.0.0.1 (both
// needed on our machines), checks that Docker answers, and builds the
// images with scripts/images.sh (unless TUNNELMESH_ITEST_NO_BUILD=1). When
// Docker is not reachable it returns nil and every New skips with the
// reason; a failed image build is an error.
func Setup(services ...string) error {
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The docker CLI builds the images, testcontainers runs them: both
	// must reach the engine.
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		skipReason = fmt.Sprintf("needs Docker: docker CLI cannot reach the engine: %v: %s", err, strings.TrimSpace(string(out)))
		return nil
	}
	p, err := testcontainers.NewDockerProvider()
	if err == nil {
		err = p.Health(ctx)
		p.Close()
	}
	if err != nil {
		skipReason = fmt.Sprintf("needs Docker: not reachable: %v", err)
		return nil
	}
	if os.Getenv("TUNNELMESH_ITEST_NO_BUILD") == "1" {
		return nil
	}
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	start := time.Now()
	cmd := exec.Command(filepath.Join(root, "scripts", "images.sh"), services...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/images.sh: %w\n%s", err, out.String())
	}
	fmt.Fprintf(os.Stderr, "integration: images built in %s\n", time.Since(start).Round(time.Second))
	return nil
}

// RequireDocker skips t when Setup found no reachable Docker engine; in CI
// it fails t instead (testkit/testenv).
func RequireDocker(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		testenv.Missing(t, skipReason)
	}
}

// RepoRoot is the repository's root directory (found from this file).
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("repo root: no caller information")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "scripts", "images.sh")); err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	return root, nil
}

// Env is one mesh: a coordinator attached to every network of the Env, and
// the nodes added to it.
type Env struct {
	t      *testing.T
	prefix string
	nets   map[string]*testcontainers.DockerNetwork
	coord  testcontainers.Container
	token  string

	mu    sync.Mutex // guards the field below
	nodes map[string]*Node
}

// DefaultPolicy lets every node ping every other node, nothing else.
const DefaultPolicy = `rules:
  - name: ping
    from: "*"
    to: "*"
    proto: icmp
`

// New starts a mesh on Docker networks named by nets (logical names such as
// "net-a"; each becomes a fresh network of its own), with a coordinator on
// all of them, and creates a reusable join token. It skips the test when
// Docker is not reachable.
func New(t *testing.T, nets ...string) *Env {
	t.Helper()
	return NewWithPolicy(t, DefaultPolicy, nets...)
}

// NewWithPolicy is New with the coordinator's first policy version policy
// (YAML) instead of DefaultPolicy.
func NewWithPolicy(t *testing.T, policy string, nets ...string) *Env {
	t.Helper()
	RequireDocker(t)
	if len(nets) == 0 {
		t.Fatal("harness.New: no networks")
	}
	var b [3]byte
	rand.Read(b[:])
	e := &Env{t: t, prefix: "tmit-" + hex.EncodeToString(b[:]), nets: map[string]*testcontainers.DockerNetwork{}, nodes: map[string]*Node{}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range nets {
		nw, err := network.New(ctx, network.WithLabels(map[string]string{"tunnelmesh.itest": e.prefix}))
		testcontainers.CleanupNetwork(t, nw)
		if err != nil {
			t.Fatalf("create network %s: %v", name, err)
		}
		e.nets[name] = nw
	}
	cfg := `listen: ":8443"
public_url: ` + CoordinatorURL + `
data_dir: /var/lib/tunnelmesh/registry
online_timeout: 20s
policy_file: ` + coordPolicy + `
log_level: debug
`
	req := testcontainers.ContainerRequest{
		Image: AgentImage,
		Name:  e.prefix + "-coordinator",
		Cmd:   []string{"coordinator", "--config", coordConfig},
		Files: []testcontainers.ContainerFile{
			{Reader: strings.NewReader(cfg), ContainerFilePath: coordConfig, FileMode: 0o644},
			{Reader: strings.NewReader(policy), ContainerFilePath: coordPolicy, FileMode: 0o644},
		},
		ConfigModifier: func(c *container.Config) { c.Hostname = "coordinator" },
		NetworkAliases: map[string][]string{},
	}
	for _, name := range nets {
		req.Networks = append(req.Networks, e.nets[name].Name)
		req.NetworkAliases[e.nets[name].Name] = []string{"coordinator"}
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	e.cleanupContainer(c, "coordinator")
	if err != nil {
		t.Fatalf("start coordinator: %v", err)
	}
	e.coord = c
	e.waitCoordinator(ctx)
	e.token = e.CreateToken("--reusable")
	return e
}

// cleanupContainer removes c (and its anonymous volumes) when the test
// ends, printing its log first when the test failed.
func (e *Env) cleanupContainer(c testcontainers.Container, name string) {
	e.t.Cleanup(func() {
		if c == nil {
			return
		}
		if e.t.Failed() || os.Getenv("TUNNELMESH_ITEST_LOGS") == "1" {
			e.t.Logf("---- log of %s ----\n%s", name, tail(containerLog(c), 80))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Terminate(ctx, testcontainers.StopTimeout(5*time.Second)); err != nil {
			e.t.Errorf("remove container %s: %v", name, err)
		}
	})
}

func containerLog(c testcontainers.Container) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Logs(ctx)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Token is the Env's reusable join token.
func (e *Env) Token() string { return e.token }

// Admin runs `tunnelmesh admin --config ... ARGS` in the coordinator and
// returns its output; a non-zero exit fails the test.
func (e *Env) Admin(args ...string) string {
	e.t.Helper()
	out, code, err := e.exec(e.coord, append([]string{"tunnelmesh", "admin", "--config", coordConfig}, args...), time.Minute)
	if err != nil || code != 0 {
		e.t.Fatalf("tunnelmesh admin %s: exit %d, %v\n%s", strings.Join(args, " "), code, err, out)
	}
	return out
}

// CreateToken creates a join token (flags as for `admin tokens create`).
func (e *Env) CreateToken(flags ...string) string {
	e.t.Helper()
	return strings.TrimSpace(e.Admin(append([]string{"tokens", "create"}, flags...)...))
}

// RegistryNodes lists the registry's nodes, sorted by name.
func (e *Env) RegistryNodes() []api.NodeInfo {
	e.t.Helper()
	out := e.Admin("nodes", "list", "--json")
	var nodes []api.NodeInfo
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		e.t.Fatalf("admin nodes list --json: %v\n%s", err, out)
	}
	slices.SortFunc(nodes, func(a, b api.NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return nodes
}

// waitCoordinator waits until the admin API answers.
func (e *Env) waitCoordinator(ctx context.Context) {
	e.t.Helper()
	var out string
	for {
		var code int
		var err error
		out, code, err = e.exec(e.coord, []string{"tunnelmesh", "admin", "--config", coordConfig, "tokens", "list"}, 10*time.Second)
		if err == nil && code == 0 {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("coordinator not answering: %s", out)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// RestartCoordinator stops the coordinator (SIGTERM), waits pause, starts
// it again on the same data volume and waits until it answers.
func (e *Env) RestartCoordinator(pause time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := 10 * time.Second
	if err := e.coord.Stop(ctx, &stop); err != nil {
		e.t.Fatalf("stop coordinator: %v", err)
	}
	time.Sleep(pause)
	if err := e.coord.Start(ctx); err != nil {
		e.t.Fatalf("start coordinator: %v", err)
	}
	e.waitCoordinator(ctx)
}

// exec runs cmd in c and returns its combined output and exit code.
func (e *Env) exec(c testcontainers.Container, cmd []string, timeout time.Duration) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	code, r, err := c.Exec(ctx, cmd, tcexec.Multiplexed())
	if err != nil {
		return "", -1, err
	}
	b, err := io.ReadAll(r)
	return string(b), code, err
}
