package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/integration/harness"
)

func TestMain(m *testing.M) {
	if err := harness.Setup("agent", "meshdns", "dockerwatch", "demo-web"); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

const (
	// joinTimeout: a node sees a new peer within a second of the netmap
	// change; allow for container start-up on a busy machine.
	joinTimeout = 30 * time.Second
	// reachTimeout: the first ping may ride a handshake (and a relay
	// connection).
	reachTimeout = 45 * time.Second
)

// peersOf is every name in names but self.
func peersOf(self string, names ...string) []string {
	var out []string
	for _, n := range names {
		if n != self {
			out = append(out, n)
		}
	}
	return out
}

// checkFullMesh checks that every node pings every other node by name,
// alternately as "name" and "name.mesh", each pair as its own subtest.
func checkFullMesh(t *testing.T, nodes ...*harness.Node) {
	t.Helper()
	var mu sync.Mutex
	failed := map[string]error{}
	answers := map[string]string{}
	harness.AllPairs(nodes, func(a, b *harness.Node) {
		peer := b.Name
		if a.Name < b.Name {
			peer += ".mesh"
		}
		out, err := a.Reach(peer, reachTimeout)
		mu.Lock()
		defer mu.Unlock()
		failed[a.Name+"->"+b.Name] = err
		answers[a.Name+"->"+b.Name] = out
	})
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			t.Run(a.Name+"->"+b.Name, func(t *testing.T) {
				if err := failed[a.Name+"->"+b.Name]; err != nil {
					t.Error(err)
				} else {
					t.Log(answers[a.Name+"->"+b.Name])
				}
			})
		}
	}
}

// TestJoinFullMeshAcrossNetworks: three nodes on two Docker networks that
// do not route to each other (node1, node2 on net-a; node3 on net-b; the
// coordinator on both) join, see each other, and every pair pings by name.
// node3's pairs need a path other than the LAN: the relay.
func TestJoinFullMeshAcrossNetworks(t *testing.T) {
	env := harness.New(t, "net-a", "net-b")
	names := []string{"node1", "node2", "node3"}
	nodes := []*harness.Node{env.AddNode("node1", "net-a"), env.AddNode("node2", "net-a"), env.AddNode("node3", "net-b")}
	ips := map[string]bool{}
	for _, n := range nodes {
		st := n.WaitPeers(joinTimeout, peersOf(n.Name, names...)...)
		if ips[st.IP.String()] || !st.IP.IsValid() {
			t.Fatalf("%s: mesh IP %s duplicated or invalid", n.Name, st.IP)
		}
		ips[st.IP.String()] = true
		if !st.Coordinator.Reachable {
			t.Errorf("%s: coordinator not reachable in status", n.Name)
		}
	}
	reg := env.RegistryNodes()
	if len(reg) != 3 {
		t.Fatalf("registry lists %d nodes, want 3: %+v", len(reg), reg)
	}
	checkFullMesh(t, nodes...)
}

// TestRelayOnlyNode: node4 shares a network with the coordinator (and so its
// relay) only, with no other node; it still talks to every node, and they
// to it.
func TestRelayOnlyNode(t *testing.T) {
	env := harness.New(t, "net-a", "net-b", "net-c")
	names := []string{"node1", "node3", "node4"}
	nodes := []*harness.Node{env.AddNode("node1", "net-a"), env.AddNode("node3", "net-b"), env.AddNode("node4", "net-c")}
	for _, n := range nodes {
		n.WaitPeers(joinTimeout, peersOf(n.Name, names...)...)
	}
	checkFullMesh(t, nodes...)
}

// TestRegistryRestart: the coordinator stops and starts again on its data
// volume while two nodes on one LAN ping each other. No ping is lost
// (direct tunnels do not need the registry), the registry comes back with
// the same mesh, nodes, addresses and tokens, nodes reconnect to it, a node
// whose tunnels ride the coordinator's relay (which restarts with it) talks
// again, and nodes join afterwards with tokens created before the restart.
func TestRegistryRestart(t *testing.T) {
	env := harness.New(t, "net-a", "net-b")
	n1, n2 := env.AddNode("node1", "net-a"), env.AddNode("node2", "net-a")
	far := env.AddNode("far", "net-b") // its tunnels ride the coordinator's relay
	st1 := n1.WaitPeers(joinTimeout, "node2", "far")
	n2.WaitPeers(joinTimeout, "node1", "far")
	far.WaitPeers(joinTimeout, "node1", "node2")
	n1.WaitReachable("node2", reachTimeout)
	n2.WaitReachable("node1", reachTimeout)
	far.WaitReachable("node1", reachTimeout)
	if t.Failed() {
		t.FailNow()
	}
	before := env.RegistryNodes()
	single := env.CreateToken() // single-use, not used before the restart

	// 12 pings a second apart from each side, while the coordinator is
	// down for about 3 s plus its stop and start.
	const count = 12
	type result struct {
		pongs int
		out   string
		err   error
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i, pair := range [][2]*harness.Node{{n1, n2}, {n2, n1}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, out, err := pair[0].Ping(pair[1].Name, count)
			results[i] = result{p, out, err}
		}()
	}
	time.Sleep(2 * time.Second)
	restart := time.Now()
	env.RestartCoordinator(3 * time.Second)
	t.Logf("coordinator back after %s", time.Since(restart).Round(100*time.Millisecond))
	wg.Wait()
	for i, r := range results {
		if r.err != nil || r.pongs != count {
			t.Errorf("pings %d during the registry restart: %d of %d answered (%v)\n%s", i, r.pongs, count, r.err, r.out)
		}
	}

	after := env.RegistryNodes()
	if len(after) != len(before) {
		t.Fatalf("registry nodes after restart: %+v, before %+v", after, before)
	}
	for i := range before {
		if before[i].ID != after[i].ID || before[i].Name != after[i].Name || before[i].IP != after[i].IP || before[i].PublicKey != after[i].PublicKey {
			t.Errorf("node %d after restart: %+v, before %+v", i, after[i], before[i])
		}
	}
	// Nodes reconnect (the netmap watch resumes) and keep their mesh.
	for _, n := range []*harness.Node{n1, n2, far} {
		var st harness.Status
		var err error
		for deadline := time.Now().Add(joinTimeout); time.Now().Before(deadline); time.Sleep(time.Second) {
			if st, err = n.TryStatus(); err == nil && st.Coordinator.Reachable {
				break
			}
		}
		if err != nil || !st.Coordinator.Reachable {
			t.Errorf("%s: coordinator not reachable again: %v %+v", n.Name, err, st.Coordinator)
		}
		if st.MeshID != st1.MeshID {
			t.Errorf("%s: mesh %s after restart, want %s", n.Name, st.MeshID, st1.MeshID)
		}
	}
	// The relayed tunnels went down with the coordinator's relay; they come
	// back when the nodes reconnect to it.
	far.WaitReachable("node1", reachTimeout)
	n2.WaitReachable("far", reachTimeout)
	// The reusable token of the Env and the single-use one both survived.
	n3 := env.AddNode("node3", "net-a")
	n4 := env.AddNodeWithToken("node4", single, "net-a")
	n3.WaitPeers(joinTimeout, "node1", "node2", "node4", "far")
	n4.WaitPeers(joinTimeout, "node1", "node2", "node3", "far")
	n1.WaitPeers(joinTimeout, "node2", "node3", "node4", "far")
	n3.WaitReachable("node1", reachTimeout)
	n1.WaitReachable("node4", reachTimeout)
}

// TestNodeRestart: a node's container stops and starts again; it comes back
// from its saved join with the same node ID and address, and the pair
// talks again both ways.
func TestNodeRestart(t *testing.T) {
	env := harness.New(t, "net-a")
	n1, n2 := env.AddNode("node1", "net-a"), env.AddNode("node2", "net-a")
	n1.WaitPeers(joinTimeout, "node2")
	before := n2.WaitPeers(joinTimeout, "node1")
	n1.WaitReachable("node2", reachTimeout)
	n2.WaitReachable("node1", reachTimeout)

	after := n2.Restart(2 * time.Second)
	if after.NodeID != before.NodeID || after.IP != before.IP || after.MeshID != before.MeshID {
		t.Errorf("node2 after restart: id %s ip %s mesh %s; before id %s ip %s mesh %s",
			after.NodeID, after.IP, after.MeshID, before.NodeID, before.IP, before.MeshID)
	}
	n2.WaitPeers(joinTimeout, "node1")
	n2.WaitReachable("node1", reachTimeout)
	n1.WaitReachable("node2.mesh", reachTimeout)
	reg := env.RegistryNodes()
	if len(reg) != 2 {
		t.Errorf("registry lists %d nodes after a node restart, want 2 (no duplicate): %+v", len(reg), reg)
	}
}

// TestRemovedNodeIsCutOff: the admin removes node3; every other node drops
// it, it cannot reach anyone and no one reaches it, and the rest of the
// mesh is unaffected.
func TestRemovedNodeIsCutOff(t *testing.T) {
	env := harness.New(t, "net-a")
	names := []string{"node1", "node2", "node3"}
	nodes := []*harness.Node{env.AddNode("node1", "net-a"), env.AddNode("node2", "net-a"), env.AddNode("node3", "net-a")}
	for _, n := range nodes {
		n.WaitPeers(joinTimeout, peersOf(n.Name, names...)...)
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	n1.WaitReachable("node3", reachTimeout)
	n3.WaitReachable("node1", reachTimeout)
	ip3 := n3.Status().IP.String()
	if t.Failed() {
		t.FailNow()
	}

	env.Admin("nodes", "remove", "node3")
	n1.WaitPeers(joinTimeout, "node2")
	n2.WaitPeers(joinTimeout, "node1")
	var reg []string
	for _, n := range env.RegistryNodes() {
		reg = append(reg, n.Name)
	}
	if slices.Contains(reg, "node3") {
		t.Errorf("registry still lists node3: %v", reg)
	}

	ip1 := n1.Status().IP.String()
	ip2 := n2.Status().IP.String()
	var wg sync.WaitGroup
	check := func(from *harness.Node, peer string) {
		defer wg.Done()
		if pongs, out, err := from.Ping(peer, 1); err == nil || pongs != 0 {
			t.Errorf("%s: ping %s after node3's removal answered:\n%s", from.Name, peer, out)
		}
	}
	wg.Add(4)
	// By address: the others no longer know node3's name, and node3
	// dropped every peer.
	go check(n1, ip3)
	go check(n2, ip3)
	go check(n3, ip1)
	go check(n3, ip2)
	wg.Wait()
	n1.MustPing("node2")
	n2.MustPing("node1")
}

// TestMeshDNS: meshdns runs in the dns node's network namespace with its
// credentials, as in compose, and answers node names and reverse lookups
// from the netmap (asked from outside over the Docker network); a node
// that joins later is answered too.
func TestMeshDNS(t *testing.T) {
	env := harness.New(t, "net-a")
	dns := env.AddNode("dns", "net-a")
	n1 := env.AddNode("node1", "net-a")
	env.AddMeshDNS(dns, harness.MeshDNSCorefile)
	server := net.JoinHostPort(dns.ContainerIPs()[0], "53")
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
	lookup := func(name string, timeout time.Duration) ([]string, error) {
		var addrs []string
		var err error
		for deadline := time.Now().Add(timeout); ; time.Sleep(500 * time.Millisecond) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			addrs, err = r.LookupHost(ctx, name)
			cancel()
			if err == nil || time.Now().After(deadline) {
				return addrs, err
			}
		}
	}
	ip1 := n1.Status().IP.String()
	if addrs, err := lookup("node1.mesh", joinTimeout); err != nil || !slices.Equal(addrs, []string{ip1}) {
		t.Errorf("node1.mesh = %v, %v; want [%s]", addrs, err, ip1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if names, err := r.LookupAddr(ctx, ip1); err != nil || !slices.Equal(names, []string{"node1.mesh."}) {
		t.Errorf("reverse %s = %v, %v; want [node1.mesh.]", ip1, names, err)
	}
	if addrs, err := r.LookupHost(ctx, "nosuchnode.mesh"); err == nil {
		t.Errorf("nosuchnode.mesh = %v, want NXDOMAIN", addrs)
	}
	n2 := env.AddNode("node2", "net-a")
	ip2 := n2.Status().IP.String()
	if addrs, err := lookup("node2.mesh", joinTimeout); err != nil || !slices.Equal(addrs, []string{ip2}) {
		t.Errorf("node2.mesh (joined later) = %v, %v; want [%s]", addrs, err, ip2)
	}
}
