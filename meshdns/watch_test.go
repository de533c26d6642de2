package meshdns

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

func TestFollowsNetmapChanges(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	m := startPlugin(t, ms.corefile(`meshdns {
		credentials CREDS
	}`))
	waitFor(t, "netmap", func() bool { return m.Ready() })

	if got := query(t, m, "db1.mesh.", dns.TypeA).Rcode; got != dns.RcodeNameError {
		t.Fatalf("db1.mesh. before join: rcode %s, want NXDOMAIN", dns.RcodeToString[got])
	}
	ms.addNode(t, "db1")
	waitFor(t, "db1.mesh. to resolve", func() bool { return len(query(t, m, "db1.mesh.", dns.TypeA).Answer) == 1 })

	ms.fake.SetServices("db1", api.Service{Name: "pg", Protocol: "tcp", Port: 5432})
	waitFor(t, "_pg._tcp.db1.mesh. SRV", func() bool { return len(query(t, m, "_pg._tcp.db1.mesh.", dns.TypeSRV).Answer) == 1 })
	ms.fake.SetServices("db1")
	waitFor(t, "_pg._tcp.db1.mesh. to go", func() bool {
		return query(t, m, "_pg._tcp.db1.mesh.", dns.TypeSRV).Rcode == dns.RcodeNameError
	})

	ms.fake.RemoveNode("db1")
	waitFor(t, "db1.mesh. to stop resolving", func() bool { return query(t, m, "db1.mesh.", dns.TypeA).Rcode == dns.RcodeNameError })
	if got := query(t, m, "2.0.64.100.in-addr.arpa.", dns.TypePTR).Rcode; got != dns.RcodeNameError {
		t.Errorf("PTR of removed node: rcode %s, want NXDOMAIN", dns.RcodeToString[got])
	}
}

func TestRegistryOutage(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	ms.addNode(t, "db1")
	m := startPlugin(t, ms.corefile(`meshdns outage.test {
		credentials CREDS
		zone outage.test
		stale 300ms
	}`))
	waitFor(t, "netmap", func() bool { return m.Ready() })

	ms.fake.SetUnavailable(true)
	// Break the current long poll so the watch meets the outage now: a
	// version bump answers it, and the next request gets 503.
	ms.fake.SetOnline("db1", false)
	waitFor(t, "readiness to drop", func() bool { return !m.Ready() })
	if got := testutil.ToFloat64(registryReachable.WithLabelValues(m.origin())); got != 0 {
		t.Errorf("registry_reachable during the outage = %v, want 0", got)
	}
	if got := testutil.ToFloat64(registryErrors.WithLabelValues(m.origin())); got < 1 {
		t.Errorf("registry_errors_total during the outage = %v, want at least 1", got)
	}
	if got := query(t, m, "db1.outage.test.", dns.TypeA); len(got.Answer) != 1 {
		t.Fatalf("db1.outage.test. during the outage: %d answers (rcode %s), want the last netmap's answer", len(got.Answer), dns.RcodeToString[got.Rcode])
	}

	ms.fake.SetUnavailable(false)
	ms.addNode(t, "db2")
	waitFor(t, "readiness to come back", func() bool { return m.Ready() })
	waitFor(t, "db2.mesh. after the outage", func() bool { return len(query(t, m, "db2.outage.test.", dns.TypeA).Answer) == 1 })
	if got := testutil.ToFloat64(registryReachable.WithLabelValues(m.origin())); got != 1 {
		t.Errorf("registry_reachable after the outage = %v, want 1", got)
	}
	if got, want := testutil.ToFloat64(netmapVersion.WithLabelValues(m.origin())), float64(ms.fake.Version()); got != want {
		t.Errorf("netmap_version = %v, want %v", got, want)
	}
}

func TestStaleZeroStaysReady(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	m := startPlugin(t, ms.corefile(`meshdns {
		credentials CREDS
		stale 0
	}`))
	waitFor(t, "netmap", func() bool { return m.Ready() })
	ms.fake.SetUnavailable(true)
	ms.addNode(t, "db1") // ends the long poll; the netmap carrying db1 may or may not get through
	waitFor(t, "a failed request", func() bool { return m.failingSince.Load() != 0 })
	time.Sleep(50 * time.Millisecond)
	if !m.Ready() {
		t.Error("Ready() = false during an outage with stale 0, want true")
	}
}

func TestNoNetmapYet(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	ms.fake.SetUnavailable(true)
	m := startPlugin(t, ms.corefile(`meshdns {
		credentials CREDS
		fallthrough
	}`))
	waitFor(t, "a failed request", func() bool { return m.failingSince.Load() != 0 })
	if m.Ready() {
		t.Error("Ready() = true before any netmap")
	}
	if got := query(t, m, "dns.mesh.", dns.TypeA).Rcode; got != dns.RcodeServerFailure {
		t.Errorf("dns.mesh. before any netmap: rcode %s, want SERVFAIL", dns.RcodeToString[got])
	}
	if got := query(t, m, "example.org.", dns.TypeA).Rcode; got != dns.RcodeRefused {
		t.Errorf("example.org. before any netmap: rcode %s, want the next plugin's REFUSED", dns.RcodeToString[got])
	}
	ms.fake.SetUnavailable(false)
	waitFor(t, "first netmap", func() bool { return m.Ready() })
	if got := query(t, m, "dns.mesh.", dns.TypeA); len(got.Answer) != 1 {
		t.Errorf("dns.mesh. A: %d answers, want 1", len(got.Answer))
	}
}

// TestNoGoroutineLeak starts and stops the plugin as Corefile reloads do and
// checks that nothing it started is left running.
func TestNoGoroutineLeak(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	// The fake registry's own goroutines are running already; anything new
	// after the loop is the plugin's (or its connections').
	running := goleak.IgnoreCurrent()
	for i := range 3 {
		c := caddy.NewTestController("dns", ms.corefile("meshdns mesh {\ncredentials CREDS\n}"))
		m, err := parse(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.OnStartup(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "netmap", func() bool { return m.Ready() })
		if i == 1 {
			ms.fake.SetUnavailable(true) // shut down while retrying, too
			ms.fake.SetOnline("dns", true)
			waitFor(t, "a failed request", func() bool { return m.failingSince.Load() != 0 })
		}
		if err := m.OnShutdown(); err != nil {
			t.Fatal(err)
		}
		if err := m.OnShutdown(); err != nil { // twice is harmless
			t.Fatal(err)
		}
		ms.fake.SetUnavailable(false)
	}
	goleak.VerifyNone(t, running)
}

func TestParseErrors(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"no credentials", "meshdns", "credentials: a credentials file is required"},
		{"credentials without file", "meshdns {\ncredentials\n}", "credentials: want one file"},
		{"missing file", "meshdns {\ncredentials /nonexistent/dns.credentials\n}", "load credentials"},
		{"ttl not a number", "meshdns {\ncredentials CREDS\nttl soon\n}", `ttl "soon"`},
		{"ttl too large", "meshdns {\ncredentials CREDS\nttl 86400\n}", `ttl "86400"`},
		{"negative stale", "meshdns {\ncredentials CREDS\nstale -1s\n}", `stale "-1s"`},
		{"bad zone", "meshdns {\ncredentials CREDS\nzone .\n}", `zone ".": not a domain name`},
		{"zone without argument", "meshdns {\ncredentials CREDS\nzone\n}", "zone: want one zone"},
		{"unknown property", "meshdns {\ncredentials CREDS\nrefresh 10\n}", `unknown property "refresh"`},
		{"twice", "meshdns {\ncredentials CREDS\n}\nmeshdns {\ncredentials CREDS\n}", "this plugin can only be used once"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(caddy.NewTestController("dns", ms.corefile(tc.input)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parse(%q) = %v, want an error containing %q", tc.input, err, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	ms := newMesh(t, netip.Prefix{})
	c := caddy.NewTestController("dns", ms.corefile(`meshdns mesh 100.64.0.0/10 {
		credentials CREDS
		zone Corp.Example.
		ttl 5
		stale 1m
		fallthrough 64.100.in-addr.arpa
	}`))
	m, err := parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if m.zone != "corp.example." || m.ttl != 5 || m.staleAfter != time.Minute {
		t.Errorf("zone, ttl, stale = %q, %d, %s, want corp.example., 5, 1m", m.zone, m.ttl, m.staleAfter)
	}
	if len(m.Zones) != 65 || m.Zones[0] != "mesh." || m.Zones[1] != "64.100.in-addr.arpa." {
		t.Errorf("Zones = %d zones starting %q, want mesh. and 64 reverse zones", len(m.Zones), m.Zones[:min(2, len(m.Zones))])
	}
	if !m.Fall.Through("1.0.64.100.in-addr.arpa.") || m.Fall.Through("x.mesh.") {
		t.Errorf("Fall = %v, want only 64.100.in-addr.arpa.", m.Fall.Zones)
	}
	if m.creds.Key.IsZero() {
		t.Error("credentials key not loaded")
	}
}
