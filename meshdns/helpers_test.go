package meshdns

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
)

// mesh is a fake registry with meshdns's own node ("dns", 100.64.0.1)
// registered and its credentials file written.
type mesh struct {
	fake      *registrytest.Fake
	credsPath string
}

func newMesh(t testing.TB, cidr netip.Prefix) *mesh {
	t.Helper()
	f := registrytest.New(cidr)
	t.Cleanup(f.Close)
	return &mesh{fake: f, credsPath: writeCredentials(t, f, "dns")}
}

// writeCredentials registers name with f and writes its credentials file
// (with a relative key_file) into a temporary directory.
func writeCredentials(t testing.TB, f *registrytest.Fake, name string) string {
	t.Helper()
	key, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	creds, _, err := f.AddNode(name, key)
	if err != nil {
		t.Fatalf("AddNode(%s): %v", name, err)
	}
	dir := t.TempDir()
	if err := key.Save(filepath.Join(dir, "node.key")); err != nil {
		t.Fatal(err)
	}
	creds.KeyFile = "node.key"
	path := filepath.Join(dir, "dns.credentials")
	if err := creds.Save(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func (ms *mesh) addNode(t testing.TB, name string) {
	t.Helper()
	key, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ms.fake.AddNode(name, key); err != nil {
		t.Fatalf("AddNode(%s): %v", name, err)
	}
}

// corefile fills in the credentials path (%s) of a meshdns block.
func (ms *mesh) corefile(block string) string {
	return strings.ReplaceAll(block, "CREDS", ms.credsPath)
}

// startPlugin parses block (a meshdns directive), starts it, and stops it
// at cleanup. Names it passes on get REFUSED from the next handler.
func startPlugin(t *testing.T, block string) *MeshDNS {
	t.Helper()
	c := caddy.NewTestController("dns", block)
	c.ServerBlockKeys = []string{"."} // a root server block, unless the block names zones
	m, err := parse(c)
	if err != nil {
		t.Fatalf("parse(%q): %v", block, err)
	}
	m.Next = test.NextHandler(dns.RcodeRefused, nil)
	if err := m.OnStartup(); err != nil {
		t.Fatalf("OnStartup: %v", err)
	}
	t.Cleanup(func() { m.OnShutdown() })
	return m
}

// waitFor polls cond every 10ms for up to 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// query asks the plugin directly.
func query(t *testing.T, m *MeshDNS, name string, qtype uint16) *dns.Msg {
	t.Helper()
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	rcode, err := m.ServeDNS(context.Background(), rec, req)
	if err != nil {
		t.Fatalf("ServeDNS(%s %s): %v", name, dns.TypeToString[qtype], err)
	}
	if rec.Msg == nil { // nothing written: the server would answer rcode
		msg := new(dns.Msg)
		msg.SetRcode(req, rcode)
		return msg
	}
	return rec.Msg
}

// rrStrings renders a section for comparison: one record per string, tabs
// as single spaces, sorted.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	slices.Sort(out)
	return out
}

func apiService(name, proto string, port uint16) api.Service {
	return api.Service{Name: name, Protocol: proto, Port: port}
}
