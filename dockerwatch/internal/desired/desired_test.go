package desired

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/enginetest"
)

// recordedNet is the network the recorder attached its containers to.
var recordedNet = netip.MustParsePrefix("192.168.192.0/20")

func render(svcs []Service, skips []Skip) string {
	var b strings.Builder
	for _, s := range svcs {
		fmt.Fprintf(&b, "%s %d/%s->%s %v %s; ", s.Name, s.Port, s.Proto, s.Target, s.Allow, s.Via)
	}
	for _, s := range skips {
		fmt.Fprintf(&b, "skip %s: %s; ", s.Container, s.Reason)
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// TestRecordedStream computes the set after every step of the recorded
// engine stream.
func TestRecordedStream(t *testing.T) {
	rec, err := enginetest.Load(filepath.Join("..", "enginetest", "testdata", "stream.json"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		web     = "dwrec-web 8080/tcp->192.168.192.2:8080 [group:devs tag:web] label; dwrec-web 5353/udp->192.168.192.2:5353 [group:devs tag:web] label"
		hostnet = "skip dwrec-hostnet: host network: the container shares the host's ports, there is no container address to forward to"
		pub     = "dwrec-pub 32768/tcp->192.168.192.4:8080 [] auto_publish"
		site    = "site 8080/tcp->192.168.192.2:8080 [] label"
	)
	webPub := "dwrec-web 8080/tcp->192.168.192.2:8080 [group:devs tag:web] label; " + pub + "; dwrec-web 5353/udp->192.168.192.2:5353 [group:devs tag:web] label; " + hostnet
	want := []struct{ labels, auto string }{
		{web, web}, // run web
		{web, web}, // run plain (unlabelled, publishes nothing)
		{web + "; " + hostnet, web + "; " + hostnet},   // run hostnet
		{web + "; " + hostnet, webPub},                 // run pub
		{hostnet, pub + "; " + hostnet},                // pause web
		{web + "; " + hostnet, webPub},                 // unpause web
		{hostnet, pub + "; " + hostnet},                // stop web
		{web + "; " + hostnet, webPub},                 // start web
		{web + "; " + hostnet, web + "; " + hostnet},   // kill pub
		{hostnet, hostnet},                             // rm web
		{site + "; " + hostnet, site + "; " + hostnet}, // recreate web with other labels
		{site, site}, // rm the others
		{"", ""},     // rm web
	}
	if len(want) != len(rec.Steps) {
		t.Fatalf("recording has %d steps, the test expects %d", len(rec.Steps), len(want))
	}
	for i, st := range rec.Steps {
		for _, auto := range []bool{false, true} {
			w := want[i].labels
			if auto {
				w = want[i].auto
			}
			got := render(Compute(st.List, Options{AutoPublish: auto, Reachable: []netip.Prefix{recordedNet}}))
			if got != w {
				t.Errorf("step %d (%s) auto_publish=%v:\n got %s\nwant %s", i, st.Action, auto, got, w)
			}
		}
	}
}

func TestUnreachableNetworkIsSkipped(t *testing.T) {
	rec, err := enginetest.Load(filepath.Join("..", "enginetest", "testdata", "stream.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := render(Compute(rec.Steps[0].List, Options{Reachable: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")}}))
	want := "skip dwrec-web: not attached to a network the agent's namespace is on (networks: dwrec-net), and the namespace has no IPv4 default gateway to reach the host's published ports through"
	if got != want {
		t.Errorf("Compute = %s, want %s", got, want)
	}
	// Through the host: the recorded pub publishes on the host's loopback
	// only (-p 127.0.0.1::8080), which the namespace cannot reach; web
	// publishes nothing. Both stay out, each with its reason.
	got = render(Compute(rec.Steps[3].List, Options{AutoPublish: true, Reachable: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/16")}, Host: netip.MustParseAddr("10.99.0.1")}))
	want = "skip dwrec-hostnet: host network: the container shares the host's ports, there is no container address to forward to; " +
		"skip dwrec-pub: not attached to a network the agent's namespace is on (networks: dwrec-net), and port 8080/tcp is published on the host's loopback only (127.0.0.1:32768), which the namespace cannot reach; " +
		"skip dwrec-web: not attached to a network the agent's namespace is on (networks: dwrec-net), and port 8080/tcp is not published on the host (docker run -p)"
	if got != want {
		t.Errorf("Compute through the host =\n %s\nwant\n %s", got, want)
	}
}

// published adds to c a port published on the host: private/proto at
// hostIP:public.
func published(c container.Summary, hostIP string, public, private uint16, proto string) container.Summary {
	var ip netip.Addr
	if hostIP != "" {
		ip = netip.MustParseAddr(hostIP)
	}
	c.Ports = append(c.Ports, container.PortSummary{IP: ip, PublicPort: public, PrivatePort: private, Type: proto})
	return c
}

// TestThroughHost: containers on a network the node's namespace is not
// on are forwarded to the host ports they publish, through the host.
func TestThroughHost(t *testing.T) {
	o := Options{AutoPublish: true, Reachable: []netip.Prefix{netip.MustParsePrefix("172.18.0.0/16")}, Host: netip.MustParseAddr("172.18.0.1")}
	other := func(id, name string, labels map[string]string) container.Summary {
		return running(id, name, 10, labels, "172.30.0.2")
	}
	const notOn = "not attached to a network the agent's namespace is on (networks: net), and "
	for _, tc := range []struct {
		name string
		c    container.Summary
		want string
	}{
		{"auto_publish: every address, both families", published(published(other("a", "pub", nil), "::", 8081, 80, "tcp"), "0.0.0.0", 8081, 80, "tcp"),
			"pub 8081/tcp->172.18.0.1:8081 [] auto_publish"},
		{"auto_publish: tcp and udp", published(published(other("a", "pub", nil), "0.0.0.0", 5353, 53, "udp"), "0.0.0.0", 8081, 80, "tcp"),
			"pub 8081/tcp->172.18.0.1:8081 [] auto_publish; pub 5353/udp->172.18.0.1:5353 [] auto_publish"},
		{"auto_publish: one host address", published(other("a", "pub", nil), "192.0.2.7", 8081, 80, "tcp"),
			"pub 8081/tcp->192.0.2.7:8081 [] auto_publish"},
		{"auto_publish: loopback and one host address, same host port", published(published(other("a", "pub", nil), "127.0.0.1", 8081, 80, "tcp"), "192.0.2.7", 8081, 80, "tcp"),
			"pub 8081/tcp->192.0.2.7:8081 [] auto_publish"},
		{"auto_publish: loopback only", published(other("a", "pub", nil), "127.0.0.1", 8081, 80, "tcp"),
			"skip pub: " + notOn + "port 80/tcp is published on the host's loopback only (127.0.0.1:8081), which the namespace cannot reach"},
		{"auto_publish: IPv6 only", published(other("a", "pub", nil), "::", 8081, 80, "tcp"),
			"skip pub: " + notOn + "port 80/tcp is published on IPv6 only ([::]:8081)"},
		{"label: its port published", published(other("a", "web", map[string]string{LabelExpose: "8080", LabelAllow: "node2"}), "0.0.0.0", 49153, 8080, "tcp"),
			"web 8080/tcp->172.18.0.1:49153 [node2] label"},
		{"label: lowest of two host ports", published(published(other("a", "web", map[string]string{LabelExpose: "8080"}), "0.0.0.0", 49160, 8080, "tcp"), "0.0.0.0", 49153, 8080, "tcp"),
			"web 8080/tcp->172.18.0.1:49153 [] label"},
		{"label: another port published, not its own", published(other("a", "web", map[string]string{LabelExpose: "8080"}), "0.0.0.0", 8081, 80, "tcp"),
			"skip web: " + notOn + "port 8080/tcp is not published on the host (docker run -p)"},
		{"label: one of two ports not published", published(other("a", "web", map[string]string{LabelExpose: "8080,5353/udp"}), "0.0.0.0", 8080, 8080, "tcp"),
			"skip web: " + notOn + "port 5353/udp is not published on the host (docker run -p)"},
		{"label: udp published as tcp only", published(other("a", "dns", map[string]string{LabelExpose: "53/udp"}), "0.0.0.0", 5353, 53, "tcp"),
			"skip dns: " + notOn + "port 53/udp is not published on the host (docker run -p)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(Compute([]container.Summary{tc.c}, o)); got != tc.want {
				t.Errorf("Compute =\n %s\nwant\n %s", got, tc.want)
			}
		})
	}
	// Without a default gateway nothing goes through the host.
	c := published(other("a", "pub", nil), "0.0.0.0", 8081, 80, "tcp")
	got := render(Compute([]container.Summary{c}, Options{AutoPublish: true, Reachable: o.Reachable}))
	if want := "skip pub: not attached to a network the agent's namespace is on (networks: net), and the namespace has no IPv4 default gateway to reach the host's published ports through"; got != want {
		t.Errorf("Compute without a gateway = %s, want %s", got, want)
	}
	// On a reachable network the container's own address is used, never
	// the host's published port.
	c = published(running("a", "pub", 10, nil, "172.18.0.5"), "0.0.0.0", 8081, 80, "tcp")
	if got, want := render(Compute([]container.Summary{c}, o)), "pub 8081/tcp->172.18.0.5:80 [] auto_publish"; got != want {
		t.Errorf("Compute on a reachable network = %s, want %s", got, want)
	}
}

func running(id, name string, created int64, labels map[string]string, ip string) container.Summary {
	c := container.Summary{ID: id, Names: []string{"/" + name}, Created: created, Labels: labels, State: container.StateRunning}
	c.HostConfig.NetworkMode = "net"
	c.NetworkSettings = &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{
		"net": {IPAddress: netip.MustParseAddr(ip), IPPrefixLen: 24},
	}}
	return c
}

func TestConflictsAndLabels(t *testing.T) {
	net := []netip.Prefix{netip.MustParsePrefix("172.30.0.0/24")}
	for _, tc := range []struct {
		name string
		list []container.Summary
		want string
	}{
		{"older container keeps the port", []container.Summary{
			running("b", "new", 20, map[string]string{LabelExpose: "8080"}, "172.30.0.3"),
			running("a", "old", 10, map[string]string{LabelExpose: "8080/tcp"}, "172.30.0.2"),
		}, "old 8080/tcp->172.30.0.2:8080 [] label; skip new: port 8080/tcp (by old) already forwarded for an older container"},
		{"older container keeps the name", []container.Summary{
			running("a", "one", 10, map[string]string{LabelExpose: "80", LabelName: "web"}, "172.30.0.2"),
			running("b", "two", 20, map[string]string{LabelExpose: "81", LabelName: "Web"}, "172.30.0.3"),
		}, `web 80/tcp->172.30.0.2:80 [] label; skip two: service name "web" is taken by an older container`},
		{"compose name becomes a label", []container.Summary{
			running("a", "proj_web_1", 10, map[string]string{LabelExpose: "80"}, "172.30.0.2"),
		}, "proj-web-1 80/tcp->172.30.0.2:80 [] label"},
		{"bad protocol", []container.Summary{
			running("a", "x", 10, map[string]string{LabelExpose: "80/sctp"}, "172.30.0.2"),
		}, `skip x: label tunnelmesh.expose: "80/sctp": protocol must be tcp or udp`},
		{"bad port", []container.Summary{
			running("a", "x", 10, map[string]string{LabelExpose: "0/tcp"}, "172.30.0.2"),
		}, `skip x: label tunnelmesh.expose: "0/tcp": port must be 1 to 65535`},
		{"empty expose", []container.Summary{
			running("a", "x", 10, map[string]string{LabelExpose: " , "}, "172.30.0.2"),
		}, `skip x: label tunnelmesh.expose: " , ": no ports (want e.g. 8080/tcp,5353/udp)`},
		{"bad name label", []container.Summary{
			running("a", "x", 10, map[string]string{LabelExpose: "80", LabelName: "a.b"}, "172.30.0.2"),
		}, `skip x: label tunnelmesh.name: name "a.b": only lowercase letters, digits and hyphens are allowed`},
		{"bad selector", []container.Summary{
			running("a", "x", 10, map[string]string{LabelExpose: "80", LabelAllow: "tag:we b"}, "172.30.0.2"),
		}, `skip x: label tunnelmesh.allow: selector "tag:we b": name "we b": only lowercase letters, digits and hyphens are allowed (want *, a node name, tag:NAME or group:NAME)`},
		{"too many selectors", []container.Summary{
			running("a", "x", 10, map[string]string{LabelExpose: "80", LabelAllow: "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"}, "172.30.0.2"),
		}, "skip x: label tunnelmesh.allow: 17 selectors, at most 16"},
		{"unlabelled is never exposed", []container.Summary{
			running("a", "x", 10, nil, "172.30.0.2"),
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(Compute(tc.list, Options{Reachable: net})); got != tc.want {
				t.Errorf("Compute =\n %s\nwant\n %s", got, tc.want)
			}
		})
	}
}
