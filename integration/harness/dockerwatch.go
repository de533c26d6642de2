package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
)

// Images of dockerwatch and of the demo container (and HTTP client);
// scripts/images.sh builds them (services dockerwatch and demo-web).
const (
	DockerwatchImage = "tunnelmesh/dockerwatch:dev"
	DemoWebImage     = "tunnelmesh/demo-web:dev"
)

// ForwardingNode is the NodeOptions of a node that dockerwatch forwards
// for: its namespace forwards IPv4 (the container's /proc/sys is read-only,
// so dockerwatch cannot turn it on itself).
var ForwardingNode = NodeOptions{Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}

// Container is a container the Env started besides the mesh's own (web
// containers, dockerwatch, HTTP clients). It is removed when the test ends
// unless Remove removed it first.
type Container struct {
	Name string
	env  *Env
	c    testcontainers.Container

	mu      sync.Mutex // guards the field below
	removed bool
}

func (e *Env) startContainer(name string, req testcontainers.ContainerRequest) *Container {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req.Name = e.prefix + "-" + name
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	ct := &Container{Name: name, env: e, c: c}
	e.t.Cleanup(func() {
		if c == nil {
			return
		}
		if e.t.Failed() || os.Getenv("TUNNELMESH_ITEST_LOGS") == "1" {
			e.t.Logf("---- log of %s ----\n%s", name, tail(containerLog(c), 60))
		}
		ct.Remove()
	})
	if err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	return ct
}

// ID is the container's Docker ID.
func (c *Container) ID() string { return c.c.GetContainerID() }

// Exec runs cmd in the container; it returns the combined output and the
// exit code.
func (c *Container) Exec(timeout time.Duration, cmd ...string) (string, int, error) {
	return c.env.exec(c.c, cmd, timeout)
}

// Stop stops the container (SIGTERM, then SIGKILL after 10 s).
func (c *Container) Stop() {
	c.env.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stop := 10 * time.Second
	if err := c.c.Stop(ctx, &stop); err != nil {
		c.env.t.Fatalf("stop %s: %v", c.Name, err)
	}
}

// Kill sends SIGKILL: the process gets no chance to clean up.
func (c *Container) Kill() {
	c.env.t.Helper()
	if out, err := exec.Command("docker", "kill", c.ID()).CombinedOutput(); err != nil {
		c.env.t.Fatalf("docker kill %s: %v: %s", c.Name, err, out)
	}
}

// Start starts the stopped container again.
func (c *Container) Start() {
	c.env.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.c.Start(ctx); err != nil {
		c.env.t.Fatalf("start %s: %v", c.Name, err)
	}
}

// Remove removes the container (and its anonymous volumes), stopping it
// first; a second call does nothing.
func (c *Container) Remove() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed || c.c == nil {
		return
	}
	c.removed = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.c.Terminate(ctx, testcontainers.StopTimeout(5*time.Second)); err != nil {
		c.env.t.Errorf("remove container %s: %v", c.Name, err)
	}
}

// AddDockerwatch starts tunnelmesh-dockerwatch next to n, as compose runs
// it: in n's network namespace, with NET_ADMIN, the Docker socket
// read-only and n's state volume (for n's local API socket), as root. n
// must be a ForwardingNode.
func (e *Env) AddDockerwatch(n *Node) *Container {
	e.t.Helper()
	return e.AddDockerwatchWith(n, "")
}

// dockerwatchConfig is where AddDockerwatchWith puts its configuration.
const dockerwatchConfig = "/etc/tunnelmesh/dockerwatch.yaml"

// AddDockerwatchWith is AddDockerwatch with the configuration file config
// (dockerwatch.yaml's YAML; empty: the image's defaults).
func (e *Env) AddDockerwatchWith(n *Node, config string) *Container {
	e.t.Helper()
	var cmd []string
	var files []testcontainers.ContainerFile
	if config != "" {
		cmd = []string{"--config", dockerwatchConfig}
		files = []testcontainers.ContainerFile{{Reader: strings.NewReader(config), ContainerFilePath: dockerwatchConfig, FileMode: 0o644}}
	}
	return e.startContainer("dockerwatch-"+n.Name, testcontainers.ContainerRequest{
		Image: DockerwatchImage,
		Cmd:   cmd,
		Files: files,
		ConfigModifier: func(c *container.Config) {
			c.User = "0"
		},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.NetworkMode = container.NetworkMode("container:" + n.c.GetContainerID())
			hc.VolumesFrom = []string{n.c.GetContainerID() + ":ro"}
			hc.Binds = []string{"/var/run/docker.sock:/var/run/docker.sock:ro"}
			hc.CapAdd = []string{"NET_ADMIN"}
		},
	})
}

// AddWeb starts a demo-web container (HTTP "hello from NAME" on :8080, or
// on the --listen address in args) named name, attached to the Env's
// network net, with labels.
func (e *Env) AddWeb(name, net string, labels map[string]string, args ...string) *Container {
	e.t.Helper()
	return e.AddWebWith(name, WebOptions{Net: net, Labels: labels, Args: args})
}

// WebOptions say how AddWebWith runs a demo-web container.
type WebOptions struct {
	Net    string            // the Env's network to attach it to; "host": the host's network
	Labels map[string]string // its labels
	// Publish are container ports ("8080/tcp") to publish on the host, on
	// a host port the engine picks (docker run -p 8080/tcp); HostPort
	// tells which.
	Publish []string
	Args    []string // its command line (e.g. --listen :8081)
}

// AddWebWith starts a demo-web container (HTTP "hello from NAME" on
// :8080, or on the --listen address in o.Args) named name, as o says.
func (e *Env) AddWebWith(name string, o WebOptions) *Container {
	e.t.Helper()
	req := testcontainers.ContainerRequest{
		Image:        DemoWebImage,
		Cmd:          o.Args,
		Env:          map[string]string{"NAME": name},
		Labels:       o.Labels,
		ExposedPorts: o.Publish,
	}
	if o.Net == "host" {
		req.HostConfigModifier = func(hc *container.HostConfig) { hc.NetworkMode = "host" }
	} else {
		nw, ok := e.nets[o.Net]
		if !ok {
			e.t.Fatalf("AddWeb %s: no network %q in this Env", name, o.Net)
		}
		req.Networks = []string{nw.Name}
	}
	return e.startContainer(name, req)
}

// HostPort is the host port that the engine published the container's
// port (e.g. "8080/tcp") on.
func (c *Container) HostPort(port string) int {
	c.env.t.Helper()
	out, err := exec.Command("docker", "port", c.ID(), port).Output()
	if err != nil {
		c.env.t.Fatalf("docker port %s %s: %v", c.Name, port, err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		i := strings.LastIndex(l, ":")
		var p int
		if _, err := fmt.Sscan(l[i+1:], &p); i >= 0 && err == nil && p > 0 {
			return p
		}
	}
	c.env.t.Fatalf("docker port %s %s: no host port in %q", c.Name, port, out)
	return 0
}

// Log is the container's log so far.
func (c *Container) Log() string { return containerLog(c.c) }

// HTTPClient is an HTTP client in a node's network namespace: it resolves
// through the node's resolver (meshdns, when the mesh has one) and its
// connections go through the node's tunnels.
type HTTPClient struct {
	*Container
}

// AddHTTPClient starts an HTTPClient in n's network namespace (a demo-web
// container; the agent image has no HTTP client).
func (e *Env) AddHTTPClient(n *Node) HTTPClient {
	e.t.Helper()
	return HTTPClient{e.startContainer("client-"+n.Name, testcontainers.ContainerRequest{
		Image: DemoWebImage,
		Cmd:   []string{"--listen", "127.0.0.1:18080"},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.NetworkMode = container.NetworkMode("container:" + n.c.GetContainerID())
		},
	})}
}

// Get fetches url, giving up after timeout, and returns the body; the
// error carries what the client printed.
func (h HTTPClient) Get(url string, timeout time.Duration, flags ...string) (string, error) {
	cmd := append([]string{"/tunnelmesh-demo-web", "get", "--timeout", timeout.String()}, flags...)
	out, code, err := h.Exec(timeout+30*time.Second, append(cmd, url)...)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", url, err)
	}
	if code != 0 {
		return "", fmt.Errorf("get %s: exit %d: %s", url, code, strings.TrimSpace(out))
	}
	return out, nil
}

// Pid is the host PID of the node container's first process (for nsenter
// into its network namespace).
func (n *Node) Pid() (int, error) {
	out, err := exec.Command("docker", "inspect", "-f", "{{.State.Pid}}", n.c.GetContainerID()).Output()
	if err != nil {
		return 0, fmt.Errorf("docker inspect %s: %w", n.Name, err)
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(out)), &pid); err != nil || pid == 0 {
		return 0, fmt.Errorf("pid of %s: %q", n.Name, out)
	}
	return pid, nil
}

// AddWebIn starts a demo-web container named name in n's network namespace
// (a server on the node itself, reached without a forward).
func (e *Env) AddWebIn(n *Node, name string, args ...string) *Container {
	e.t.Helper()
	return e.startContainer(name, testcontainers.ContainerRequest{
		Image: DemoWebImage,
		Cmd:   args,
		Env:   map[string]string{"NAME": name},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.NetworkMode = container.NetworkMode("container:" + n.c.GetContainerID())
		},
	})
}
