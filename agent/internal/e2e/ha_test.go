package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/netnslab"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

// startPostgres runs Debian's PostgreSQL for the test as registry
// internal/pgtest does (initdb in a temporary directory as the postgres
// user, listening only on a unix socket there, which every namespace
// reaches through the file system) and returns the DSN of its postgres
// database.
func startPostgres(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		testenv.Missing(t, "needs PostgreSQL (Debian postgresql; scripts/install-deps.sh installs it)")
	}
	slices.Sort(dirs)
	bin := filepath.Dir(dirs[len(dirs)-1])
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("no postgres user to run the server as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	dir, err := os.MkdirTemp("", "tmpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v: %s", err, out)
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	pg := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off")
	pg.Dir = dir
	pg.Stdout, pg.Stderr = logf, logf
	pg.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { pg.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		pg.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			pg.Process.Kill()
			<-done
		}
	})
	// Ready once its socket exists (the registries retry their first
	// connection as well, through the token creation below).
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, ".s.PGSQL.5432")); err == nil {
			break
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			t.Fatalf("postgres exited at start: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("postgres socket missing after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "postgres://postgres@/postgres?host=" + dir + "&sslmode=disable"
}

// startHACoordinators starts two coordinators (c1 at 10.99.0.1, c2 at
// 10.99.0.2, relays relay-1 and relay-2) on one fresh PostgreSQL database
// and returns their namespaces, URLs, config files, processes, and a
// reusable join token made on c2 (it works on both).
func startHACoordinators(t *testing.T, l *lab) (cnss, urls, cfgs []string, coords []*netnslab.Proc, tok string) {
	t.Helper()
	dsn := startPostgres(t)
	cnss = []string{l.addHost("c1", 1), l.addHost("c2", 2)}
	urls = []string{"https://10.99.0.1:8443", "https://10.99.0.2:8443"}
	for i := range 2 {
		name := fmt.Sprintf("coord%d", i+1)
		extra := fmt.Sprintf("store: postgres\npostgres_dsn: %q\npublic_url: %s\nrelay: {id: relay-%d}\n", dsn, urls[i], i+1)
		cfg := l.CoordinatorConfig(name, fmt.Sprintf("10.99.0.%d:8443", i+1), fmt.Sprintf("10.99.0.%d:3478", i+1), "100.64.0.0/16", extra)
		cfgs = append(cfgs, cfg)
		coords = append(coords, l.Start(cnss[i], name, l.bin, "coordinator", "--config", cfg))
		if i == 0 {
			l.token(cnss[0], cfg) // the first has created the mesh
		}
	}
	return cnss, urls, cfgs, coords, l.token(cnss[1], cfgs[1])
}

// Two nodes that reach each other only through the relays (every packet
// between their underlay addresses is dropped), each watching its own
// coordinator and listening on that coordinator's relay; the first one's
// coordinator is killed. The node fails over to the other coordinator,
// whose relay becomes its home relay, and the pair talks again through it.
func TestHARelayedPairSurvivesCoordinatorKill(t *testing.T) {
	l := newLab(t)
	_, urls, _, coords, tok := startHACoordinators(t, l)
	ns1, ns2 := l.addHost("n1", 11), l.addHost("n2", 12)
	for _, rule := range [][]string{{"OUTPUT", "-d"}, {"INPUT", "-s"}} {
		l.Must("ip", "netns", "exec", ns1, "iptables", "-A", rule[0], rule[1], "10.99.0.12", "-j", "DROP")
	}
	n1 := l.join(ns1, "n1", "n1", "", urls[0], tok)
	n2 := l.join(ns2, "n2", "n2", "", urls[1], tok)
	relayed := func(want string) func(s localapi.Status) bool {
		return func(s localapi.Status) bool {
			return len(s.Peers) == 1 && s.Peers[0].Path == "relay "+want
		}
	}
	s1 := l.waitStatus(n1, 60*time.Second, "n2 through relay-2 (n2's home relay)", relayed("relay-2"))
	s2 := l.waitStatus(n2, 60*time.Second, "n1 through relay-1 (n1's home relay)", relayed("relay-1"))
	if err := l.ping(ns1, s2.IP.String(), 30*time.Second); err != nil {
		t.Fatalf("ping n1 -> n2 through the relays: %v", err)
	}

	killed := time.Now()
	coords[0].Kill()
	l.waitStatus(n2, 60*time.Second, "n1 through relay-2 (n1 failed over to c2)", relayed("relay-2"))
	if err := l.ping(ns2, s1.IP.String(), 60*time.Second); err != nil {
		t.Fatalf("ping n2 -> n1 after c1 (n1's coordinator and relay) was killed: %v", err)
	}
	if err := l.ping(ns1, s2.IP.String(), 30*time.Second); err != nil {
		t.Fatalf("ping n1 -> n2 after c1 was killed: %v", err)
	}
	t.Logf("the relayed pair talked again %v after c1 was killed", time.Since(killed).Round(time.Millisecond))
}

// Two coordinators on one PostgreSQL database, nodes spread over them;
// one coordinator is killed with SIGKILL. Every node keeps its tunnels,
// the nodes of the killed one get netmaps from the other within 5 s, a
// join and a removal on the survivor reach every node, and the killed
// coordinator returns and serves what it missed.
func TestHAKillOneCoordinator(t *testing.T) {
	l := newLab(t)
	cnss, urls, cfgs, coords, tok := startHACoordinators(t, l)
	hosts := []string{"n1", "n2", "n3", "n4"}
	nss := map[string]string{}
	nodes := map[string]*node{}
	for i, h := range hosts {
		nss[h] = l.addHost(h, 11+i)
		nodes[h] = l.join(nss[h], h, h, "", urls[i%2], tok) // n1, n3 on c1; n2, n4 on c2
	}
	ips := map[string]string{}
	for _, h := range hosts {
		s := l.waitStatus(nodes[h], 30*time.Second, "three peers", func(s localapi.Status) bool {
			return len(s.Peers) == 3
		})
		ips[h] = s.IP.String()
	}
	// Every node has saved both replicas (from its netmap).
	for _, h := range hosts {
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, err := os.ReadFile(filepath.Join(nodes[h].stateDir, "node.json"))
			if err == nil && strings.Contains(string(b), urls[0]) && strings.Contains(string(b), urls[1]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's state lists not both replicas: %s", h, b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, src := range hosts {
		for _, dst := range hosts {
			if src != dst {
				if err := l.ping(nss[src], ips[dst], 15*time.Second); err != nil {
					t.Fatalf("ping %s -> %s before the kill: %v", src, dst, err)
				}
			}
		}
	}
	versions := map[string]uint64{}
	for _, h := range hosts {
		versions[h] = mustStatus(t, l, nodes[h]).NetmapVersion
	}

	killed := time.Now()
	coords[0].Kill()
	// Tunnels do not depend on the registry.
	for _, pair := range [][2]string{{"n1", "n2"}, {"n2", "n3"}, {"n3", "n4"}, {"n4", "n1"}} {
		if err := l.ping(nss[pair[0]], ips[pair[1]], 5*time.Second); err != nil {
			t.Errorf("ping %s -> %s after the kill: %v", pair[0], pair[1], err)
		}
	}
	// The nodes of c1 turn to c2 and get a netmap there (c2 makes its
	// relay their home relay, a change).
	for _, h := range []string{"n1", "n3"} {
		s := l.waitStatus(nodes[h], 30*time.Second, "a netmap from c2", func(s localapi.Status) bool {
			return s.Coordinator.URL == urls[1] && s.NetmapVersion > versions[h] && s.Coordinator.Reachable
		})
		took := time.Since(killed)
		t.Logf("%s: netmap version %d from c2 by %v after c1 was killed", h, s.NetmapVersion, took.Round(time.Millisecond))
		if took > 5*time.Second {
			t.Errorf("%s got a netmap from c2 %v after c1 was killed, want within 5s", h, took)
		}
	}

	// A join and a removal on the survivor reach every node.
	nss["n5"] = l.addHost("n5", 15)
	nodes["n5"] = l.join(nss["n5"], "n5", "n5", "", urls[1], tok)
	if out, err := l.Run(cnss[1], 20*time.Second, l.bin, "admin", "--config", cfgs[1], "nodes", "remove", "n4"); err != nil {
		t.Fatalf("remove n4 on c2: %v: %s", err, out)
	}
	want := []string{"n1", "n2", "n3", "n5"}
	for _, h := range want {
		l.waitStatus(nodes[h], 30*time.Second, "n5 joined, n4 removed", func(s localapi.Status) bool {
			names := peerNames(s)
			return len(names) == 3 && !slices.Contains(names, "n4") && slices.Contains(append(names, h), "n5")
		})
	}
	s5 := mustStatus(t, l, nodes["n5"])
	if err := l.ping(nss["n1"], s5.IP.String(), 15*time.Second); err != nil {
		t.Errorf("ping n1 (failed over) -> n5 (joined on c2): %v", err)
	}

	// c1 returns and catches up.
	coords[0] = l.Start(cnss[0], "coord1", l.bin, "coordinator", "--config", cfgs[0])
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := l.Run(cnss[0], 10*time.Second, l.bin, "admin", "--config", cfgs[0], "nodes", "list", "--json")
		if err == nil && strings.Contains(out, `"n5"`) && !strings.Contains(out, `"n4"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("returned c1 lists nodes %v, %q; want n5 and no n4", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A node joining on the returned c1 reaches the others.
	nss["n6"] = l.addHost("n6", 16)
	nodes["n6"] = l.join(nss["n6"], "n6", "n6", "", urls[0], tok)
	l.waitStatus(nodes["n2"], 30*time.Second, "n6 joined on the returned c1", func(s localapi.Status) bool {
		return slices.Contains(peerNames(s), "n6")
	})
}
