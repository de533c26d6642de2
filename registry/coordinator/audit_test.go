package coordinator_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
	"github.com/tunnelmesh/tunnelmesh/shared/tlspin"
)

// rawJoin posts a hand-made join body.
func rawJoin(t *testing.T, tc *testCoord, body map[string]any) (int, api.Error) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return rawCall(t, tc, newReq(t, tc, "POST", api.PathJoin, "application/json", b))
}

// TestJoinNeedsProofOfKey: a token holder who knows another node's public
// key (every peer sees it in its netmap) cannot take over that node's
// registration: the join is refused and the victim keeps its name,
// endpoints, tags and working credential.
func TestJoinNeedsProofOfKey(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true, Tags: []string{"db"}})
	victim := tc.join(t, tok, "victim")
	victimEP := netip.MustParseAddrPort("192.0.2.10:41641")
	if err := victim.client.ReportEndpoints(ctx, api.EndpointsRequest{Endpoints: []netip.AddrPort{victimEP}}); err != nil {
		t.Fatal(err)
	}
	attackerTok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	attacker := newKey(t)
	var junk [64]byte
	rand.Read(junk[:])
	now := time.Now().UnixMilli()

	for _, tt := range []struct {
		name  string
		extra map[string]any
	}{
		{"no signature", nil},
		{"random signature", map[string]any{"timestamp": now, "signature": base64.StdEncoding.EncodeToString(junk[:])}},
		{"signature by another key", map[string]any{"timestamp": now, "signature": base64.StdEncoding.EncodeToString(
			attacker.Sign([]byte("tunnelmesh-join-v1\n")))}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]any{
				"protocol_version": api.ProtocolVersion, "token": attackerTok, "name": "evil",
				"public_key": victim.key.Public(), "endpoints": []string{"198.51.100.9:41641"},
			}
			for k, v := range tt.extra {
				body[k] = v
			}
			status, e := rawJoin(t, tc, body)
			if status/100 != 4 {
				t.Fatalf("join with the victim's public key and %s: %d %q, want 4xx", tt.name, status, e.Error)
			}
			// The victim still authenticates, and nothing of it changed.
			if err := victim.client.Heartbeat(ctx); err != nil {
				t.Fatalf("victim's heartbeat after the attack: %v", err)
			}
			nm, err := victim.client.Netmap(ctx, 0, 0)
			if err != nil {
				t.Fatalf("victim's netmap after the attack: %v", err)
			}
			if nm.Self.Name != "victim" || len(nm.Self.Endpoints) != 1 || nm.Self.Endpoints[0] != victimEP ||
				len(nm.Self.Tags) != 1 || nm.Self.Tags[0] != "db" || nm.Self.ID != victim.join.NodeID {
				t.Fatalf("victim after the attack = %+v, want name victim, endpoints [%s], tags [db]", nm.Self, victimEP)
			}
		})
	}
	if status, e := rawJoin(t, tc, map[string]any{"protocol_version": api.ProtocolVersion, "token": attackerTok, "name": "evil",
		"public_key": attacker.Public()}); status != http.StatusBadRequest || !strings.Contains(e.Error, "signature") {
		t.Errorf("unsigned join of a new key = %d %q, want 400 naming the signature", status, e.Error)
	}
	nodes, err := tc.admin.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Name != "victim" {
		t.Fatalf("nodes after the attacks = %+v, want only victim", nodes)
	}
}

// TestNameCannotBeAnotherNodesID: node IDs and names share the admin's
// "nodes remove NAME|ID"; a name shaped like a node ID is refused.
func TestNameCannotBeAnotherNodesID(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	victim := tc.join(t, tok, "victim")
	_, err := tc.joinReq(ctx, tok, victim.join.NodeID, newKey(t))
	if apiStatus(err) != http.StatusBadRequest {
		t.Fatalf("join named %s (victim's ID) = %v, want 400", victim.join.NodeID, err)
	}
	if err := tc.admin.RemoveNode(ctx, victim.join.NodeID); err != nil {
		t.Fatalf("remove by ID: %v", err)
	}
	if err := victim.client.Heartbeat(ctx); apiStatus(err) != http.StatusUnauthorized {
		t.Fatalf("removed victim's heartbeat = %v, want 401", err)
	}
}

func TestTokenExpiryOutOfRange(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	for _, d := range []time.Duration{2562047 * time.Hour, 20 * 365 * 24 * time.Hour} {
		_, err := tc.admin.CreateToken(ctx, api.CreateTokenRequest{Expiry: api.Duration(d)})
		if apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "expiry") {
			t.Errorf("create token with expiry %s = %v, want 400 naming expiry", d, err)
		}
	}
	toks, err := tc.admin.Tokens(ctx)
	if err != nil || len(toks) != 0 {
		t.Fatalf("tokens after refused creations = %v, %v; want none", toks, err)
	}
	resp, err := tc.admin.CreateToken(ctx, api.CreateTokenRequest{Expiry: api.Duration(365 * 24 * time.Hour)})
	if err != nil || resp.Info.ExpiresAt.Before(time.Now()) {
		t.Fatalf("create token with expiry 1 year = %+v, %v", resp, err)
	}
}

// dialTLS opens a TLS connection to the coordinator.
func dialTLS(t *testing.T, tc *testCoord) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	return tls.DialWithDialer(d, "tcp", tc.Addr().String(), tlspin.ClientConfig(tc.Pin()))
}

// closedWithin reads from c until the server closes it or ceiling passes.
func closedWithin(c net.Conn, ceiling time.Duration) (string, bool) {
	c.SetReadDeadline(time.Now().Add(ceiling))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return string(b), false
	}
	return string(b), true
}

// TestStalledBodyIsCut: a request announcing a body it never sends loses
// its connection within the body timeout, whether or not the handler reads
// the body.
func TestStalledBodyIsCut(t *testing.T) {
	dir := t.TempDir()
	cfg, err := coordinator.ParseConfig([]byte(fmt.Sprintf("listen: 127.0.0.1:0\nstun_listen: 'off'\ndata_dir: %s\nrequest_body_timeout: 2s\n", dir)))
	if err != nil {
		t.Fatal(err)
	}
	tc := start(t, cfg, coordinator.Options{})
	for _, ctype := range []string{"application/json", "text/plain"} {
		t.Run(ctype, func(t *testing.T) {
			c, err := dialTLS(t, tc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 1000\r\n\r\n", api.PathJoin, ctype)
			// Generous ceiling: the bound is 2s.
			got, closed := closedWithin(c, 40*time.Second)
			if !closed {
				t.Fatalf("connection with a stalled body still open after 40s (read %q)", got)
			}
		})
	}
}

func TestConnectionsPerSourceCapped(t *testing.T) {
	dir := t.TempDir()
	cfg, err := coordinator.ParseConfig([]byte(fmt.Sprintf("listen: 127.0.0.1:0\nstun_listen: 'off'\ndata_dir: %s\nmax_conns_per_source: 3\n", dir)))
	if err != nil {
		t.Fatal(err)
	}
	tc := start(t, cfg, coordinator.Options{})
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := dialTLS(t, tc)
		if err != nil {
			t.Fatalf("connection %d of 3: %v", i+1, err)
		}
		held = append(held, c)
	}
	if c, err := dialTLS(t, tc); err == nil {
		c.Close()
		t.Fatalf("4th connection from one source with max_conns_per_source 3 was accepted")
	}
	held[0].Close()
	held = held[1:]
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := dialTLS(t, tc)
		if err == nil {
			held = append(held, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection accepted after one was closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUnreachableEndpointsRefused: loopback, link-local (the cloud metadata
// address), unspecified and multicast endpoints are refused in joins and
// endpoint reports; private addresses stay allowed.
func TestUnreachableEndpointsRefused(t *testing.T) {
	tc := startDefault(t)
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	n := tc.join(t, tok, "node")
	good := netip.MustParseAddrPort("192.0.2.5:41641")
	if err := n.client.ReportEndpoints(ctx, api.EndpointsRequest{Endpoints: []netip.AddrPort{good}}); err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{"127.0.0.1:22", "127.9.9.9:41641", "[::1]:41641", "169.254.169.254:80", "[fe80::1]:41641",
		"0.0.0.0:41641", "[::]:41641", "224.0.0.1:41641", "[ff02::1]:41641", "[::ffff:127.0.0.1]:22"} {
		ep := netip.MustParseAddrPort(s)
		err := n.client.ReportEndpoints(ctx, api.EndpointsRequest{Endpoints: []netip.AddrPort{good, ep}})
		if apiStatus(err) != http.StatusBadRequest {
			t.Errorf("endpoint report with %s = %v, want 400", s, err)
		}
		err = n.client.ReportEndpoints(ctx, api.EndpointsRequest{Endpoints: []netip.AddrPort{good}, SSHEndpoint: ep})
		if apiStatus(err) != http.StatusBadRequest {
			t.Errorf("endpoint report with ssh_endpoint %s = %v, want 400", s, err)
		}
		_, err = joinEndpoints(ctx, tc, tok, fmt.Sprintf("bad-%d", i), newKey(t), []netip.AddrPort{ep})
		if apiStatus(err) != http.StatusBadRequest {
			t.Errorf("join with endpoint %s = %v, want 400", s, err)
		}
	}
	nm, err := n.client.Netmap(ctx, 0, 0)
	if err != nil || len(nm.Self.Endpoints) != 1 || nm.Self.Endpoints[0] != good || len(nm.Peers) != 0 {
		t.Fatalf("after refused reports: %+v, %v; want endpoints [%s] and no peers", nm, err, good)
	}
	private := []netip.AddrPort{netip.MustParseAddrPort("10.1.2.3:41641"), netip.MustParseAddrPort("172.16.0.2:41641"),
		netip.MustParseAddrPort("192.168.1.2:41641"), netip.MustParseAddrPort("[fd00::2]:41641"), netip.MustParseAddrPort("100.64.0.9:41641")}
	if err := n.client.ReportEndpoints(ctx, api.EndpointsRequest{Endpoints: private, SSHEndpoint: private[0]}); err != nil {
		t.Fatalf("private endpoints: %v", err)
	}
	if _, err := joinEndpoints(ctx, tc, tok, "private", newKey(t), private); err != nil {
		t.Fatalf("join with private endpoints: %v", err)
	}
}

func joinEndpoints(ctx context.Context, tc *testCoord, token, name string, key nodekey.PrivateKey, eps []netip.AddrPort) (*api.JoinResponse, error) {
	return regclient.Join(ctx, tc.hc, tc.URL(), api.JoinRequest{Token: token, Name: name, PublicKey: key.Public(), Endpoints: eps}, key)
}

// TestReplayAfterRestartRefused: a signed request captured before a restart
// cannot be replayed against the restarted registry.
func TestReplayAfterRestartRefused(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	tc := start(t, cfg, coordinator.Options{})
	tok := tc.token(t, api.CreateTokenRequest{})
	a := tc.join(t, tok, "alpha")
	body := []byte(`{}`)
	req := signed(t, tc, "POST", api.PathHeartbeat, body, a.join.Credential, a.key, time.Now())
	header := req.Header.Clone()
	if status, e := rawCall(t, tc, req); status != http.StatusNoContent {
		t.Fatalf("genuine heartbeat: %d %q", status, e.Error)
	}
	tc.stop()

	tc2 := start(t, cfg, coordinator.Options{})
	replay := newReq(t, tc2, "POST", api.PathHeartbeat, "application/json", body)
	replay.Header = header
	if status, e := rawCall(t, tc2, replay); status != http.StatusUnauthorized || !strings.Contains(e.Error, "replayed") {
		t.Fatalf("replay after restart: %d %q, want 401 replayed", status, e.Error)
	}
	// The node itself carries on.
	a.client.BaseURL = tc2.URL()
	if err := a.client.Heartbeat(context.Background()); err != nil {
		t.Fatalf("fresh heartbeat after restart: %v", err)
	}
}

// logRecorder is a slog.Handler keeping every record's text.
type logRecorder struct {
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func newLogRecorder() *logRecorder { return &logRecorder{mu: new(sync.Mutex), lines: new([]string)} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.mu.Lock()
	*h.lines = append(*h.lines, b.String())
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}
func (h *logRecorder) WithGroup(string) slog.Handler { return h }

func (h *logRecorder) matching(substr string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, l := range *h.lines {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// TestAuthFailuresLogged: failed joins and failed node authentication are
// logged, without secrets, and a flood gives a bounded number of lines.
func TestAuthFailuresLogged(t *testing.T) {
	rec := newLogRecorder()
	tc := start(t, testConfig(t, t.TempDir()), coordinator.Options{Logger: slog.New(rec)})
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	a := tc.join(t, tok, "alpha")
	// A token of this registry with a wrong secret.
	parts := strings.Split(tok, ".")
	badTok := strings.Join([]string{parts[0], parts[1], "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", parts[3]}, ".")
	if _, err := tc.joinReq(ctx, badTok, "beta", newKey(t)); apiCode(err) != api.CodeTokenInvalid {
		t.Fatalf("join with a bad token = %v, want token_invalid", err)
	}
	stolen := &regclient.Client{BaseURL: a.client.BaseURL, HTTP: a.client.HTTP, Credential: a.client.Credential, Key: newKey(t)}
	if err := stolen.Heartbeat(ctx); apiStatus(err) != http.StatusUnauthorized {
		t.Fatalf("heartbeat signed by another key = %v, want 401", err)
	}
	if got := rec.matching("join refused"); len(got) != 1 || !strings.Contains(got[0], "source=127.0.0.1") {
		t.Fatalf("join failure log lines = %q, want one naming the source", got)
	}
	if got := rec.matching("node authentication failed"); len(got) != 1 || !strings.Contains(got[0], a.join.NodeID) {
		t.Fatalf("node authentication failure log lines = %q, want one naming the node", got)
	}

	for i := 0; i < 300; i++ {
		tc.joinReq(ctx, badTok, "beta", newKey(t))
		stolen.Heartbeat(ctx)
	}
	joins, auths := rec.matching("join refused"), rec.matching("node authentication failed")
	if len(joins) > 25 || len(auths) > 25 {
		t.Fatalf("300 failures each gave %d join and %d auth log lines, want a bounded number", len(joins), len(auths))
	}
	secret := strings.Split(a.join.Credential, ".")[1]
	for _, l := range rec.matching("") {
		if strings.Contains(l, parts[2]) || strings.Contains(l, "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0") || strings.Contains(l, secret) {
			t.Fatalf("log line holds a secret: %q", l)
		}
	}
}

// TestDataDirPrivate: everything the registry creates in a fresh data
// directory is readable by its owner only (the database and its WAL hold
// the mesh PSK).
func TestDataDirPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tc := start(t, testConfig(t, dir), coordinator.Options{InitialPolicy: policy.DefaultYAML})
	tok := tc.token(t, api.CreateTokenRequest{})
	tc.join(t, tok, "alpha")
	check := func(running bool) {
		t.Helper()
		seen := 0
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
			}
			seen++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The directory, registry.db, admin.token, tls.crt, tls.key,
		// replay.log, policy/ and a policy version; while running also
		// the WAL and SHM files.
		want := 8
		if running {
			want = 10
		}
		if seen < want {
			t.Errorf("walked %d entries, want at least %d", seen, want)
		}
		if _, err := os.Stat(filepath.Join(dir, "registry.db-wal")); running && err != nil {
			t.Errorf("no WAL file to check: %v", err)
		}
	}
	check(true)
	tc.stop()
	check(false)
}
