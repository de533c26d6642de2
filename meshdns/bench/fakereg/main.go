// Command fakereg runs the fake registry (testkit/registrytest) for
// bench.sh: it registers meshdns's node ("dns") and N more nodes, writes
// the credentials meshdns needs, a hosts file with the same names for
// CoreDNS's hosts plugin, a dnsperf query file and two free ports for the
// two CoreDNS servers, then serves until
// SIGINT or SIGTERM. It is a benchmark helper, not a registry.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/tunnelmesh/tunnelmesh/shared/logging"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
)

func main() {
	dir := flag.String("dir", "", "directory for dns.credentials, dns.key, hosts, queries.txt, ports and ready (required)")
	nodes := flag.Int("nodes", 1000, "nodes to register besides meshdns's own")
	zone := flag.String("zone", "mesh", "mesh zone of the names in hosts and queries.txt")
	flag.Parse()
	l, _ := logging.New(os.Stderr, "info", "text")
	log := logging.Component(l, "fakereg")
	if err := run(*dir, *nodes, *zone, log); err != nil {
		log.Error("fakereg failed", "err", err)
		os.Exit(1)
	}
}

func run(dir string, n int, zone string, log *slog.Logger) error {
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	if n < 1 || n > 60000 {
		return fmt.Errorf("-nodes %d: want 1 to 60000", n)
	}
	fake := registrytest.New(netip.Prefix{})
	defer fake.Close()

	key, err := nodekey.Generate()
	if err != nil {
		return err
	}
	creds, _, err := fake.AddNode("dns", key)
	if err != nil {
		return fmt.Errorf("add node dns: %w", err)
	}
	creds.KeyFile = "dns.key"
	if err := key.Save(filepath.Join(dir, "dns.key")); err != nil {
		return err
	}
	if err := creds.Save(filepath.Join(dir, "dns.credentials")); err != nil {
		return err
	}
	for i := range n {
		k, err := nodekey.Generate()
		if err != nil {
			return err
		}
		if _, _, err := fake.AddNode(fmt.Sprintf("node%05d", i), k); err != nil {
			return fmt.Errorf("add node %d: %w", i, err)
		}
	}
	if err := writeFiles(dir, zone, fake); err != nil {
		return err
	}
	if err := writePorts(filepath.Join(dir, "ports"), 2); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte(fake.URL+"\n"), 0o644); err != nil {
		return err
	}
	log.Info("fake registry serving", "url", fake.URL, "nodes", n+1)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// writeFiles writes the hosts file (every node, as the netmap has them) and
// the dnsperf query file (an A query per node).
func writeFiles(dir, zone string, fake *registrytest.Fake) error {
	hosts, err := os.Create(filepath.Join(dir, "hosts"))
	if err != nil {
		return err
	}
	defer hosts.Close()
	queries, err := os.Create(filepath.Join(dir, "queries.txt"))
	if err != nil {
		return err
	}
	defer queries.Close()
	hw, qw := bufio.NewWriter(hosts), bufio.NewWriter(queries)
	for _, node := range fake.Nodes() {
		fmt.Fprintf(hw, "%s %s.%s\n", node.IP, node.Name, zone)
		fmt.Fprintf(qw, "%s.%s A\n", node.Name, zone)
	}
	if err := hw.Flush(); err != nil {
		return err
	}
	if err := qw.Flush(); err != nil {
		return err
	}
	if err := hosts.Close(); err != nil {
		return err
	}
	return queries.Close()
}

// writePorts writes n loopback ports that are free for both UDP and TCP, on
// one line.
func writePorts(path string, n int) error {
	var ports []string
	for tries := 0; len(ports) < n && tries < 100; tries++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("find free port: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err != nil {
			continue
		}
		ln.Close()
		if p := strconv.Itoa(port); !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		return fmt.Errorf("find free ports: found %d of %d", len(ports), n)
	}
	return os.WriteFile(path, []byte(strings.Join(ports, " ")+"\n"), 0o644)
}
