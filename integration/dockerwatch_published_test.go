package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/integration/harness"
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
)

// publishedPolicy: ping and DNS for everyone; node1's containers (the
// docker section) for node2 only, on every port.
const publishedPolicy = `tags: [dns]
rules:
  - name: ping
    from: "*"
    to: "*"
    proto: icmp
  - name: dns
    from: "*"
    to: tag:dns
    proto: [udp, tcp]
    ports: 53
docker:
  from: [node2]
  to: [node1]
`

// TestDockerwatchPublished runs dockerwatch with auto_publish next to
// node1, whose namespace is on the "mesh" network only, and containers on
// a fresh network, "apps", that it is not on: they are reached through the
// Docker host at the host ports they publish. Checked from HTTP clients in
// node2's and node3's namespaces:
//   - an unlabelled container publishing 8080 (docker run -p 8080, a host
//     port the engine picks) answers node2 at pub.node1.mesh:HOSTPORT;
//   - a labelled container whose labelled port is published answers node2
//     at lab.node1.mesh:8080 (the labelled port);
//   - node3, outside the policy's docker section, gets no answer from
//     either;
//   - a labelled container whose port is not published is not exposed,
//     and dockerwatch logs why; so is a labelled host-network container.
func TestDockerwatchPublished(t *testing.T) {
	testenv.NeedRoot(t, "nsenter into node1's network namespace to read the nft table")
	testenv.NeedCommand(t, "nft", "nftables")
	testenv.NeedCommand(t, "nsenter", "util-linux")
	env := harness.NewWithPolicy(t, publishedPolicy, "mesh", "apps")
	dnsToken := env.CreateToken("--reusable", "--tag", "dns")
	dns := env.AddNodeWith("dns", harness.NodeOptions{Token: dnsToken, Args: []string{"--advertise-dns"}}, "mesh")
	env.AddMeshDNS(dns, harness.MeshDNSCorefile)
	n1 := env.AddNodeWith("node1", harness.ForwardingNode, "mesh")
	n2 := env.AddNode("node2", "mesh")
	n3 := env.AddNode("node3", "mesh")
	for _, n := range []*harness.Node{n1, n2, n3} {
		n.WaitPeers(joinTimeout, peersOf(n.Name, "dns", "node1", "node2", "node3")...)
	}
	c2, c3 := env.AddHTTPClient(n2), env.AddHTTPClient(n3)
	pid, err := n1.Pid()
	if err != nil {
		t.Fatal(err)
	}
	dw := env.AddDockerwatchWith(n1, "auto_publish: true\n")

	pub := env.AddWebWith("pub", harness.WebOptions{Net: "apps", Labels: map[string]string{"tunnelmesh.name": "pub"}, Publish: []string{"8080/tcp"}})
	lab := env.AddWebWith("lab", harness.WebOptions{Net: "apps", Publish: []string{"8080/tcp"},
		Labels: map[string]string{"tunnelmesh.expose": "8080/tcp", "tunnelmesh.name": "lab"}})
	env.AddWebWith("hidden", harness.WebOptions{Net: "apps", Args: []string{"--listen", ":8081"},
		Labels: map[string]string{"tunnelmesh.expose": "8081/tcp", "tunnelmesh.name": "hidden"}})
	env.AddWebWith("hostnet", harness.WebOptions{Net: "host", Args: []string{"--listen", "127.0.0.1:0"},
		Labels: map[string]string{"tunnelmesh.expose": "8082/tcp", "tunnelmesh.name": "hostnet"}})
	hostPort := pub.HostPort("8080/tcp")
	t.Logf("pub publishes 8080/tcp on host port %d, lab on %d", hostPort, lab.HostPort("8080/tcp"))

	pubURL := fmt.Sprintf("http://pub.node1.mesh:%d/", hostPort)
	const labURL = "http://lab.node1.mesh:8080/"
	for _, u := range []struct{ url, want string }{{pubURL, "hello from pub\n"}, {labURL, "hello from lab\n"}} {
		body, err := waitGet(c2, u.url, 90*time.Second)
		if err != nil || body != u.want {
			t.Fatalf("node2: GET %s = %q, %v; want %q", u.url, body, err, u.want)
		}
		t.Logf("node2: GET %s = %q", u.url, body)
	}
	for _, u := range []string{pubURL, labURL} {
		if body, err := c3.Get(u, 3*time.Second); err == nil {
			t.Errorf("node3 (outside the docker section): GET %s = %q, want no answer", u, body)
		} else {
			t.Logf("node3 refused as it should be: %v", err)
		}
	}

	want := []string{fmt.Sprintf("pub %d/tcp", hostPort), "lab 8080/tcp"}
	slices.Sort(want)
	if got := services(t, n1); !slices.Equal(got, want) {
		t.Errorf("node1 publishes %v, want %v (hidden and hostnet left out)", got, want)
	}
	tab := nftTable(t, pid)
	if !strings.Contains(tab, fmt.Sprintf(":%d", hostPort)) || strings.Count(tab, "dnat to") != 4 {
		t.Errorf("nft table: want two forwards (pub and lab) to the host's published ports:\n%s", tab)
	}
	t.Logf("node1's forward:\n%s", tab)
	log := dw.Log()
	for _, w := range []string{
		"and port 8081/tcp is not published on the host",
		"host network: the container shares the host's ports",
	} {
		if !strings.Contains(log, w) {
			t.Errorf("dockerwatch's log does not say %q:\n%s", w, log)
		}
	}
}
