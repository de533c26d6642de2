package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Node is a TunnelMesh node in its own container (the agent image, with
// NET_ADMIN and /dev/net/tun, nothing more).
type Node struct {
	Name string
	env  *Env
	c    testcontainers.Container
}

// Status is what `tunnelmesh status --json` prints (the fields the suite
// looks at).
type Status struct {
	Name        string     `json:"name"`
	NodeID      string     `json:"node_id"`
	IP          netip.Addr `json:"ip"`
	MeshID      string     `json:"mesh_id"`
	Coordinator struct {
		URL       string `json:"url"`
		Reachable bool   `json:"reachable"`
	} `json:"coordinator"`
	NetmapVersion uint64       `json:"netmap_version"`
	Peers         []PeerStatus `json:"peers"`
	// Services are the services the node publishes, its own and those
	// set through its local API (dockerwatch's).
	Services []api.Service `json:"services"`
}

// PeerStatus is one peer in Status.
type PeerStatus struct {
	Name string     `json:"name"`
	IP   netip.Addr `json:"ip"`
	Path string     `json:"path"`
}

// PeerNames lists the peers' names, sorted.
func (s Status) PeerNames() []string {
	var names []string
	for _, p := range s.Peers {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

// AddNode starts a node that joins the mesh as name, attached to the Env's
// networks nets, and waits until it is up (status answers with its mesh
// IP). Its command is `tunnelmesh join --once ...`, so a restarted
// container starts from its saved join.
func (e *Env) AddNode(name string, nets ...string) *Node {
	e.t.Helper()
	return e.AddNodeWithToken(name, e.token, nets...)
}

// AddNodeWithToken is AddNode with a join token of the caller's.
func (e *Env) AddNodeWithToken(name, token string, nets ...string) *Node {
	e.t.Helper()
	return e.AddNodeWith(name, NodeOptions{Token: token}, nets...)
}

// NodeOptions are AddNodeWith's choices beyond the name and networks.
type NodeOptions struct {
	Token   string            // join token; empty: the Env's reusable one
	Args    []string          // more `tunnelmesh join` flags (--advertise-dns)
	Sysctls map[string]string // namespaced sysctls of the node's container
}

// AddNodeWith is AddNode with the options o.
func (e *Env) AddNodeWith(name string, o NodeOptions, nets ...string) *Node {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if o.Token == "" {
		o.Token = e.token
	}
	req := testcontainers.ContainerRequest{
		Image: AgentImage,
		Name:  e.prefix + "-" + name,
		Cmd:   append([]string{"join", "--once", "--coordinator", CoordinatorURL, "--name", name, "--log-level", "debug"}, o.Args...),
		Env:   map[string]string{"TUNNELMESH_TOKEN": o.Token},
		ConfigModifier: func(c *container.Config) {
			c.Hostname = name
		},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.CapAdd = []string{"NET_ADMIN"}
			hc.Devices = []container.DeviceMapping{{PathOnHost: "/dev/net/tun", PathInContainer: "/dev/net/tun", CgroupPermissions: "rwm"}}
			hc.Sysctls = o.Sysctls
		},
	}
	for _, n := range nets {
		nw, ok := e.nets[n]
		if !ok {
			e.t.Fatalf("AddNode %s: no network %q in this Env", name, n)
		}
		req.Networks = append(req.Networks, nw.Name)
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	e.cleanupContainer(c, name)
	if err != nil {
		e.t.Fatalf("start node %s: %v", name, err)
	}
	n := &Node{Name: name, env: e, c: c}
	e.mu.Lock()
	e.nodes[name] = n
	e.mu.Unlock()
	n.WaitUp(time.Minute)
	return n
}

// Exec runs the command in the node's container; it returns the combined
// output and the exit code.
func (n *Node) Exec(timeout time.Duration, cmd ...string) (string, int, error) {
	return n.env.exec(n.c, cmd, timeout)
}

// TryStatus returns the node's `tunnelmesh status --json`.
func (n *Node) TryStatus() (Status, error) {
	out, code, err := n.Exec(20*time.Second, "tunnelmesh", "status", "--json")
	if err != nil {
		return Status{}, err
	}
	if code != 0 {
		return Status{}, fmt.Errorf("status: exit %d: %s", code, strings.TrimSpace(out))
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return Status{}, fmt.Errorf("status --json: %w: %s", err, out)
	}
	return st, nil
}

// Status is TryStatus that fails the test on error.
func (n *Node) Status() Status {
	n.env.t.Helper()
	st, err := n.TryStatus()
	if err != nil {
		n.env.t.Fatalf("%s: %v", n.Name, err)
	}
	return st
}

// WaitUp waits until the node's status answers with a mesh IP.
func (n *Node) WaitUp(timeout time.Duration) Status {
	n.env.t.Helper()
	var st Status
	err := poll(timeout, func() error {
		var err error
		if st, err = n.TryStatus(); err != nil {
			return err
		}
		if !st.IP.IsValid() {
			return fmt.Errorf("no mesh IP yet")
		}
		return nil
	})
	if err != nil {
		n.env.t.Fatalf("%s not up after %s: %v", n.Name, timeout, err)
	}
	return st
}

// WaitPeers waits until the node's data plane holds exactly the peers
// named (in any order).
func (n *Node) WaitPeers(timeout time.Duration, names ...string) Status {
	n.env.t.Helper()
	want := slices.Clone(names)
	slices.Sort(want)
	var st Status
	err := poll(timeout, func() error {
		var err error
		if st, err = n.TryStatus(); err != nil {
			return err
		}
		if got := st.PeerNames(); !slices.Equal(got, want) {
			return fmt.Errorf("peers %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		n.env.t.Fatalf("%s: %v (after %s)", n.Name, err, timeout)
	}
	return st
}

// Ping runs `tunnelmesh ping -c count peer` (peer is a name, name.mesh or a
// mesh IP) and returns the pongs it printed and its output; err is set
// when the command did not exit 0 (no pong at all).
func (n *Node) Ping(peer string, count int) (pongs int, out string, err error) {
	out, code, err := n.Exec(pingTimeout+time.Duration(count)*2*time.Second, "tunnelmesh", "ping", "-c", fmt.Sprint(count), peer)
	pongs = strings.Count(out, "pong from ")
	if err == nil && code != 0 {
		err = fmt.Errorf("tunnelmesh ping %s: exit %d: %s", peer, code, strings.TrimSpace(out))
	}
	return pongs, out, err
}

// Reach pings peer from n until it answers, for up to timeout, and
// returns the answer ("pong from ... via PATH in RTT"); the error says
// what the last ping printed.
func (n *Node) Reach(peer string, timeout time.Duration) (string, error) {
	var out string
	err := poll(timeout, func() error {
		var err error
		_, out, err = n.Ping(peer, 1)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%s cannot reach %s within %s: %w", n.Name, peer, timeout, err)
	}
	return strings.TrimSpace(out), nil
}

// WaitReachable is Reach that fails the test (t.Errorf: safe from any
// goroutine) on error.
func (n *Node) WaitReachable(peer string, timeout time.Duration) {
	n.env.t.Helper()
	if _, err := n.Reach(peer, timeout); err != nil {
		n.env.t.Error(err)
	}
}

// MustPing pings peer once from n; no answer fails the test.
func (n *Node) MustPing(peer string) {
	n.env.t.Helper()
	if _, out, err := n.Ping(peer, 1); err != nil {
		n.env.t.Errorf("%s: ping %s: %v", n.Name, peer, err)
	} else {
		n.env.t.Logf("%s: %s", n.Name, strings.TrimSpace(out))
	}
}

// Restart stops the node's container (SIGTERM), waits pause and starts it
// again (same state volume, so the node starts from its saved join), then
// waits until it is up.
func (n *Node) Restart(pause time.Duration) Status {
	n.env.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := 10 * time.Second
	if err := n.c.Stop(ctx, &stop); err != nil {
		n.env.t.Fatalf("stop %s: %v", n.Name, err)
	}
	time.Sleep(pause)
	if err := n.c.Start(ctx); err != nil {
		n.env.t.Fatalf("start %s: %v", n.Name, err)
	}
	return n.WaitUp(time.Minute)
}

// ContainerIPs are the node container's addresses on its Docker networks.
func (n *Node) ContainerIPs() []string {
	n.env.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := n.c.ContainerIPs(ctx)
	if err != nil {
		n.env.t.Fatalf("%s: container IPs: %v", n.Name, err)
	}
	return ips
}

// ContainerID is the node's Docker container ID (for sharing its network
// namespace).
func (n *Node) ContainerID() string { return n.c.GetContainerID() }

// AllPairs runs fn for every ordered pair of distinct nodes, in parallel,
// and waits for all of them.
func AllPairs(nodes []*Node, fn func(from, to *Node)) {
	var wg sync.WaitGroup
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn(a, b)
			}()
		}
	}
	wg.Wait()
}

// poll calls fn until it returns nil or timeout passes; it returns fn's
// last error.
func poll(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// MeshDNSCorefile serves the mesh zone and reverse lookups of the mesh
// prefix from the netmap, with the credentials of the node it runs next to.
const MeshDNSCorefile = `. {
    errors
    meshdns mesh 100.64.0.0/10 {
        credentials /var/lib/tunnelmesh/credentials.json
        ttl 5
    }
}
`

// AddMeshDNS starts meshdns (the meshdns image) in n's network namespace,
// reading n's credentials from n's state volume (as root: the agent keeps
// them 0600), as compose runs it next to its dns node. It answers on port
// 53 of n's addresses.
func (e *Env) AddMeshDNS(n *Node, corefile string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req := testcontainers.ContainerRequest{
		Image: MeshDNSImage,
		Name:  e.prefix + "-meshdns-" + n.Name,
		Files: []testcontainers.ContainerFile{{Reader: strings.NewReader(corefile), ContainerFilePath: "/Corefile", FileMode: 0o644}},
		ConfigModifier: func(c *container.Config) {
			c.User = "0"
		},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.NetworkMode = container.NetworkMode("container:" + n.c.GetContainerID())
			hc.VolumesFrom = []string{n.c.GetContainerID() + ":ro"}
		},
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{ContainerRequest: req, Started: true})
	e.cleanupContainer(c, "meshdns")
	if err != nil {
		e.t.Fatalf("start meshdns next to %s: %v", n.Name, err)
	}
}
