package meshdns

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/miekg/dns"
	"go.uber.org/goleak"

	// The plugins the README's examples use.
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	InsertDirective()
	dnsserver.Quiet = true // no server list on stdout
}

// upstreamAddr is what every forwarded query gets from the test upstream.
const upstreamAddr = "192.0.2.53"

var corefileBlock = regexp.MustCompile("(?s)~~~ corefile\n(.*?)~~~")

// TestREADMEExamples runs every Corefile example of README.md in a real
// CoreDNS server (caddy instance) against the fake registry, with the
// credentials path, /etc/resolv.conf and the listen addresses replaced.
func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := corefileBlock.FindAllStringSubmatch(string(readme), -1)

	// What each example must answer, in README order.
	type check struct {
		qname string
		qtype uint16
		want  string // answer's first record data, or an rcode name
	}
	examples := []struct {
		checks []check
		http   []string // paths on the rewritten ready/prometheus addresses that must answer 200
	}{
		{checks: []check{ // mesh only
			{"db1.mesh.", dns.TypeA, "100.64.0.2"},
			{"DNS.MESH.", dns.TypeA, "100.64.0.1"},
			{"nope.mesh.", dns.TypeA, "NXDOMAIN"},
			{"2.0.64.100.in-addr.arpa.", dns.TypePTR, "REFUSED"}, // not a zone of the server block
		}},
		{checks: []check{ // everything, forwarded
			{"db1.mesh.", dns.TypeA, "100.64.0.2"},
			{"2.0.64.100.in-addr.arpa.", dns.TypePTR, "db1.mesh."},
			{"nope.mesh.", dns.TypeA, "NXDOMAIN"},
			{"example.org.", dns.TypeA, upstreamAddr},
			{"9.9.9.9.in-addr.arpa.", dns.TypePTR, upstreamAddr},
		}},
		{checks: []check{ // corp.example with fallthrough
			{"db1.corp.example.", dns.TypeA, "100.64.0.2"},
			{"_pg._tcp.db1.corp.example.", dns.TypeSRV, "0 0 5432 db1.corp.example."},
			{"www.corp.example.", dns.TypeA, upstreamAddr},
			{"1.0.64.100.in-addr.arpa.", dns.TypePTR, "dns.corp.example."},
			{"db1.mesh.", dns.TypeA, "REFUSED"},
		}},
		{checks: []check{ // metrics and readiness
			{"db1.mesh.", dns.TypeA, "100.64.0.2"},
			{"2.0.64.100.in-addr.arpa.", dns.TypePTR, "db1.mesh."},
		}, http: []string{"ready:/ready", "prometheus:/metrics"}},
	}
	if len(blocks) != len(examples) {
		t.Fatalf("README.md has %d corefile examples, this test knows %d: add the new ones here", len(blocks), len(examples))
	}

	ms := newMesh(t, netip.Prefix{})
	ms.addNode(t, "db1")
	ms.fake.SetServices("db1", apiService("pg", "tcp", 5432))
	upstream := dnstest.NewServer(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A " + upstreamAddr)
		m.Answer = []dns.RR{rr}
		w.WriteMsg(m)
	})
	t.Cleanup(upstream.Close)

	for i, ex := range examples {
		t.Run(fmt.Sprintf("example %d", i+1), func(t *testing.T) {
			corefile := blocks[i][1]
			addrs := map[string]string{"ready": freeTCP(t), "prometheus": freeTCP(t)}
			corefile = strings.NewReplacer(
				"/etc/tunnelmesh/dns.credentials", ms.credsPath,
				"/etc/resolv.conf", upstream.Addr,
				"localhost:8181", addrs["ready"],
				"localhost:9153", addrs["prometheus"],
			).Replace(corefile)
			port := startCoreDNS(t, corefile)

			for _, c := range ex.checks {
				var got string
				waitFor(t, fmt.Sprintf("%s %s = %s", c.qname, dns.TypeToString[c.qtype], c.want), func() bool {
					got = exchange(t, port, c.qname, c.qtype)
					return got == c.want
				})
			}
			for _, h := range ex.http {
				name, path, _ := strings.Cut(h, ":")
				waitFor(t, "GET "+name+path+" = 200", func() bool {
					resp, err := http.Get("http://" + addrs[name] + path)
					if err != nil {
						return false
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if path == "/metrics" && !strings.Contains(string(body), "tunnelmesh_meshdns_queries_total{") {
						t.Fatalf("/metrics lacks tunnelmesh_meshdns_queries_total")
					}
					return resp.StatusCode == http.StatusOK
				})
			}
		})
	}
}

// TestReloadLeavesNothingRunning reloads a real CoreDNS instance twice and
// stops it, then checks that no goroutine is left behind.
func TestReloadLeavesNothingRunning(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	ms.addNode(t, "db1")
	running := goleak.IgnoreCurrent()

	dnsserver.Port = freeUDP(t)
	input := caddy.CaddyfileInput{Contents: []byte(ms.corefile("mesh {\nmeshdns {\ncredentials CREDS\n}\n}\n")), Filepath: "Corefile", ServerTypeName: "dns"}
	inst, err := caddy.Start(input)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		waitFor(t, "db1.mesh.", func() bool { return exchange(t, dnsserver.Port, "db1.mesh.", dns.TypeA) == "100.64.0.2" })
		if inst, err = inst.Restart(input); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "db1.mesh. after reloads", func() bool { return exchange(t, dnsserver.Port, "db1.mesh.", dns.TypeA) == "100.64.0.2" })
	inst.ShutdownCallbacks()
	inst.Stop()
	goleak.VerifyNone(t, running)
}

// startCoreDNS starts corefile (server blocks without a port) on a free
// port and returns it.
func startCoreDNS(t *testing.T, corefile string) string {
	t.Helper()
	dnsserver.Port = freeUDP(t)
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
	if err != nil {
		t.Fatalf("start CoreDNS with\n%s\n: %v", corefile, err)
	}
	t.Cleanup(func() {
		inst.ShutdownCallbacks()
		inst.Stop()
	})
	return dnsserver.Port
}

// exchange asks 127.0.0.1:port over UDP and returns the first answer's data,
// or the rcode when there is no answer.
func exchange(t *testing.T, port, qname string, qtype uint16) string {
	t.Helper()
	req := new(dns.Msg)
	req.SetQuestion(qname, qtype)
	c := &dns.Client{Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(req, net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return "error: " + err.Error()
	}
	if len(resp.Answer) == 0 {
		return dns.RcodeToString[resp.Rcode]
	}
	hdr := resp.Answer[0].Header().String()
	return strings.TrimSpace(strings.TrimPrefix(resp.Answer[0].String(), hdr))
}

func freeUDP(t *testing.T) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		pc.Close()
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil { // CoreDNS listens on both
			ln.Close()
			return strconv.Itoa(port)
		}
	}
	t.Fatal("no free port for UDP and TCP")
	return ""
}

func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestReadyPlugin checks meshdns's readiness through CoreDNS's ready plugin:
// 503 naming meshdns until the first netmap, 200 after it, 503 again during
// a registry outage longer than stale, 200 when the registry is back.
func TestReadyPlugin(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	ms.fake.SetUnavailable(true)
	addr := freeTCP(t)
	startCoreDNS(t, ms.corefile(fmt.Sprintf(`mesh {
    ready %s {
        monitor continuously
    }
    meshdns {
        credentials CREDS
        stale 200ms
    }
}
`, addr)))
	ready := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/ready")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	waitFor(t, "/ready = 503 meshdns before the first netmap", func() bool {
		code, body := ready()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "meshdns")
	})
	ms.fake.SetUnavailable(false)
	waitFor(t, "/ready = 200 after the first netmap", func() bool { code, _ := ready(); return code == http.StatusOK })

	ms.fake.SetUnavailable(true)
	ms.fake.SetOnline("dns", true) // ends the long poll, so the outage is met at once
	waitFor(t, "/ready = 503 during the outage", func() bool { code, _ := ready(); return code == http.StatusServiceUnavailable })
	ms.fake.SetUnavailable(false)
	ms.fake.SetOnline("dns", true)
	waitFor(t, "/ready = 200 after the outage", func() bool { code, _ := ready(); return code == http.StatusOK })
}

// TestComposeCorefile runs the compose demo's Corefile: mesh names and the
// mesh prefix's reverse zones answered, every other name refused (so that
// nodes ask their own resolvers next).
func TestComposeCorefile(t *testing.T) {
	b, err := os.ReadFile("../compose/config/Corefile")
	if err != nil {
		t.Fatal(err)
	}
	ms := newMesh(t, netip.Prefix{})
	ms.addNode(t, "db1")
	corefile := strings.NewReplacer(
		"/var/lib/tunnelmesh/credentials.json", ms.credsPath,
		":8181", freeTCP(t),
		":9153", freeTCP(t),
	).Replace(string(b))
	port := startCoreDNS(t, corefile)
	for _, c := range []struct {
		qname string
		qtype uint16
		want  string
	}{
		{"db1.mesh.", dns.TypeA, "100.64.0.2"},
		{"2.0.64.100.in-addr.arpa.", dns.TypePTR, "db1.mesh."},
		{"2.0.127.100.in-addr.arpa.", dns.TypePTR, "NXDOMAIN"}, // the prefix's last /16
		{"coordinator.", dns.TypeA, "REFUSED"},
		{"example.org.", dns.TypeA, "REFUSED"},
		{"2.0.128.100.in-addr.arpa.", dns.TypePTR, "REFUSED"}, // outside the prefix
	} {
		var got string
		waitFor(t, fmt.Sprintf("%s %s = %s", c.qname, dns.TypeToString[c.qtype], c.want), func() bool {
			got = exchange(t, port, c.qname, c.qtype)
			return got == c.want
		})
	}
}
