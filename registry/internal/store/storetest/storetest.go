// Package storetest is the conformance suite of store.Store: every
// implementation (store/sqlite, store/postgres) runs Run from its tests, so
// both keep one behaviour.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Now is the clock of the suite's joins and tokens.
var Now = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// Harness makes stores for the suite.
type Harness struct {
	// New returns a fresh, empty store (closed by the suite or when t
	// ends).
	New func(t *testing.T) Instance
}

// Instance is one store under test.
type Instance struct {
	Store store.Store
	// Reopen closes Store and opens the same state again.
	Reopen func(t *testing.T) store.Store
	// Replica, when set, opens another store on the same state that may
	// be used at the same time as Store (another registry replica); the
	// concurrency tests then spread their work over both.
	Replica func(t *testing.T) store.Store
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"MeshPersists", testMeshPersists},
		{"CIDRChange", testCIDRChange},
		{"JoinAllocation", testJoinAllocation},
		{"ConcurrentJoins", testConcurrentJoins},
		{"TokenRules", testTokenRules},
		{"RemoveNodeRotatesPSK", testRemoveNodeRotatesPSK},
		{"Services", testServices},
		{"SSHFields", testSSHFields},
		{"Touch", testTouch},
		{"Secrets", testSecrets},
		{"Changes", testChanges},
		{"NodeReader", testNodeReader},
		{"Policies", testPolicies},
		{"Replays", testReplays},
		{"ScrapeTokens", testScrapeTokens},
		{"Relays", testRelays},
		{"Registries", testRegistries},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// Token creates a join token valid for an hour and returns its ID and
// secret hash.
func Token(t testing.TB, s store.Store, reusable bool) (string, [32]byte) {
	t.Helper()
	tok, _ := jointoken.New("pin")
	h := tok.SecretHash()
	if err := s.CreateToken(context.Background(), store.Token{ID: tok.ID, SecretHash: h[:], Reusable: reusable, CreatedAt: Now, ExpiresAt: Now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return tok.ID, h
}

// Join joins a node called name with key.
func Join(s store.Store, id string, h [32]byte, name string, key nodekey.PublicKey) (store.JoinResult, error) {
	return s.Join(context.Background(), store.JoinParams{TokenID: id, TokenSecretHash: h, Name: name, PublicKey: key,
		NewNodeID: TestID(name), CredentialHash: []byte("c"), Now: Now})
}

// Key returns a fresh node key.
func Key(t testing.TB) nodekey.PublicKey {
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// TestID returns a node ID of the registry's form for a test node.
func TestID(name string) string {
	h := sha256.Sum256([]byte(name))
	return "n" + hex.EncodeToString(h[:10])
}

// initMesh initialises s's mesh on prefix.
func initMesh(t testing.TB, s store.Store, prefix string) store.Mesh {
	t.Helper()
	m, err := s.InitMesh(context.Background(), netip.MustParsePrefix(prefix), Now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newMesh returns a fresh instance with its mesh initialised on prefix.
func newMesh(t *testing.T, h Harness, prefix string) Instance {
	t.Helper()
	in := h.New(t)
	initMesh(t, in.Store, prefix)
	return in
}

// onlyNode returns the one node s holds.
func onlyNode(t testing.TB, s store.Store) store.Node {
	t.Helper()
	_, nodes, err := s.Nodes(context.Background())
	if err != nil || len(nodes) != 1 {
		t.Fatalf("Nodes() = %v, %v; want one node", nodes, err)
	}
	return nodes[0]
}

// optional returns in.Store as T, an interface that only stores replicas
// share implement, and skips the test when it is not one (why: where a
// single registry keeps that state instead).
func optional[T any](t *testing.T, in Instance, why string) T {
	t.Helper()
	v, ok := in.Store.(T)
	if !ok {
		t.Skip(why)
	}
	return v
}

// other returns another replica on in's state, or in.Store itself when
// the store has no replicas.
func (in Instance) other(t *testing.T) store.Store {
	if in.Replica == nil {
		return in.Store
	}
	return in.Replica(t)
}

func testMeshPersists(t *testing.T, h Harness) {
	ctx := context.Background()
	in := h.New(t)
	s := in.Store
	m, err := s.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/16"), Now)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.PSK) != 32 || m.ID == "" {
		t.Fatalf("mesh = %+v", m)
	}
	v, err := s.BumpVersion(ctx)
	if err != nil || v != 2 {
		t.Fatalf("BumpVersion = %d, %v; want 2", v, err)
	}
	s2 := in.Reopen(t)
	m2, err := s2.InitMesh(ctx, netip.MustParsePrefix("10.1.0.0/16"), Now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if m2.ID != m.ID || string(m2.PSK) != string(m.PSK) || !m2.CreatedAt.Equal(m.CreatedAt) {
		t.Fatalf("mesh after reopen = %+v, want %+v", m2, m)
	}
	if v2, _ := s2.Version(ctx); v2 != v {
		t.Fatalf("version after reopen = %d, want %d", v2, v)
	}
}

func testCIDRChange(t *testing.T, h Harness) {
	ctx := context.Background()
	s := newMesh(t, h, "10.1.0.0/16").Store
	m, err := s.InitMesh(ctx, netip.MustParsePrefix("10.2.0.0/16"), Now)
	if err != nil || m.CIDR.String() != "10.2.0.0/16" {
		t.Fatalf("InitMesh new prefix = %v, %v", m.CIDR, err)
	}
	id, hash := Token(t, s, true)
	res, err := Join(s, id, hash, "a", Key(t))
	if err != nil || res.Node.IP.String() != "10.2.0.1" {
		t.Fatalf("join = %v, %v; want 10.2.0.1", res.Node.IP, err)
	}
	if _, err := s.InitMesh(ctx, netip.MustParsePrefix("10.3.0.0/16"), Now); !errors.Is(err, store.ErrCIDRChanged) {
		t.Fatalf("InitMesh with nodes and a new prefix = %v, want ErrCIDRChanged", err)
	}
	if _, err := s.InitMesh(ctx, netip.MustParsePrefix("10.3.0.0/31"), Now); err == nil {
		t.Fatal("InitMesh accepted an invalid prefix")
	}
}

func testJoinAllocation(t *testing.T, h Harness) {
	ctx := context.Background()
	s := newMesh(t, h, "10.1.0.0/29").Store // 6 hosts
	id, hash := Token(t, s, true)
	keys := make([]nodekey.PublicKey, 6)
	for i := range keys {
		keys[i] = Key(t)
		res, err := Join(s, id, hash, fmt.Sprintf("n%d", i), keys[i])
		if err != nil || res.Node.IP.String() != fmt.Sprintf("10.1.0.%d", i+1) {
			t.Fatalf("join n%d = %v, %v; want lowest free address", i, res.Node.IP, err)
		}
	}
	if _, err := Join(s, id, hash, "extra", Key(t)); !errors.Is(err, store.ErrRangeFull) {
		t.Fatalf("join in a full range = %v, want ErrRangeFull", err)
	}
	res, err := Join(s, id, hash, "renamed", keys[2])
	if err != nil || res.Node.IP.String() != "10.1.0.3" || res.Node.ID != TestID("n2") || !res.Rejoined {
		t.Fatalf("rejoin = %+v, %v", res, err)
	}
	if _, err := Join(s, id, hash, "n0", keys[1]); !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("join as n0 with n1's key = %v, want ErrNameTaken", err)
	}
	toks, _ := s.Tokens(ctx)
	if toks[0].Uses != 7 {
		t.Fatalf("uses = %d, want 7 (failed joins do not count)", toks[0].Uses)
	}
	if _, _, err := s.RemoveNode(ctx, "n4", Now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	res, err = Join(s, id, hash, "n4", keys[4])
	if err != nil || res.Node.IP.String() != "10.1.0.5" {
		t.Fatalf("rejoin after removal = %v, %v; want 10.1.0.5", res.Node.IP, err)
	}
	if _, _, err := s.RemoveNode(ctx, TestID("n5"), Now.Add(time.Minute)); err != nil {
		t.Fatalf("remove by ID: %v", err)
	}
	res, err = Join(s, id, hash, "newcomer", Key(t))
	if err != nil || res.Node.IP.String() != "10.1.0.6" {
		t.Fatalf("newcomer in a full range with a removed node = %v, %v; want the removed node's 10.1.0.6", res.Node.IP, err)
	}
	if _, _, err := s.RemoveNode(ctx, "nobody", Now.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("remove unknown = %v, want ErrNotFound", err)
	}
	// A gap in the middle is filled first.
	if _, _, err := s.RemoveNode(ctx, "n1", Now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, nodes, err := s.Nodes(ctx)
	if err != nil || len(nodes) != 5 {
		t.Fatalf("Nodes = %d, %v", len(nodes), err)
	}
}

// testConcurrentJoins: 200 joins at once (spread over two replicas when the
// store has them) get 200 distinct addresses, and a single-use token raced
// by 100 joins admits exactly one.
func testConcurrentJoins(t *testing.T, h Harness) {
	ctx := context.Background()
	in := h.New(t)
	a := in.Store
	initMesh(t, a, "10.1.0.0/23")
	b := in.other(t)
	initMesh(t, b, "10.1.0.0/23")
	replicas := []store.Store{a, b}
	id, hash := Token(t, a, true)
	single, sh := Token(t, b, false)
	const joins = 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	ips := map[netip.Addr]string{}
	singleOK := 0
	start := make(chan struct{})
	for i := range joins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			name := fmt.Sprintf("r%d", i)
			res, err := Join(replicas[i%2], id, hash, name, Key(t))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := ips[res.Node.IP]; dup {
				t.Errorf("%s and %s both got %s", other, name, res.Node.IP)
			}
			ips[res.Node.IP] = name
		}()
	}
	for i := range joins / 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := Join(replicas[i%2], single, sh, fmt.Sprintf("s%d", i), Key(t))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				singleOK++
			} else if !errors.Is(err, store.ErrTokenInvalid) {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(ips) != joins {
		t.Fatalf("%d distinct addresses for %d joins", len(ips), joins)
	}
	if singleOK != 1 {
		t.Fatalf("single-use token admitted %d joins, want 1", singleOK)
	}
	v, nodes, err := b.Nodes(ctx)
	if err != nil || len(nodes) != joins+1 || v < joins+2 {
		t.Fatalf("Nodes = v%d %d nodes %v; want %d nodes, version >= %d", v, len(nodes), err, joins+1, joins+2)
	}
	seen := map[netip.Addr]bool{}
	for _, n := range nodes {
		if seen[n.IP] {
			t.Fatalf("stored nodes share %s", n.IP)
		}
		seen[n.IP] = true
	}
	toks, err := a.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.ID == single && tk.Uses != 1 {
			t.Fatalf("single-use token counted %d uses, want 1", tk.Uses)
		}
	}
}

func testTokenRules(t *testing.T, h Harness) {
	ctx := context.Background()
	s := newMesh(t, h, "10.1.0.0/24").Store
	id, hash := Token(t, s, true)
	if err := s.CreateToken(ctx, store.Token{ID: id, SecretHash: hash[:], CreatedAt: Now}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate token id = %v", err)
	}
	p := store.JoinParams{TokenID: id, TokenSecretHash: hash, Name: "late", PublicKey: Key(t), NewNodeID: "x", CredentialHash: []byte("c"), Now: Now.Add(2 * time.Hour)}
	if _, err := s.Join(ctx, p); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("expired token = %v", err)
	}
	wrong := hash
	wrong[0] ^= 1
	if _, err := Join(s, id, wrong, "wrong", Key(t)); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("wrong secret = %v", err)
	}
	if _, err := Join(s, "unknown", hash, "unknown", Key(t)); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("unknown token = %v", err)
	}
	if err := s.RevokeToken(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := Join(s, id, hash, "revoked", Key(t)); !errors.Is(err, store.ErrTokenInvalid) {
		t.Fatalf("revoked token = %v", err)
	}
	if err := s.RevokeToken(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke unknown = %v", err)
	}
	toks, _ := s.Tokens(ctx)
	if len(toks) != 1 || !toks[0].Revoked || toks[0].Uses != 0 || !toks[0].ExpiresAt.Equal(Now.Add(time.Hour)) {
		t.Fatalf("tokens = %+v", toks)
	}
	_, nodes, _ := s.Nodes(ctx)
	if len(nodes) != 0 {
		t.Fatalf("failed joins left nodes: %+v", nodes)
	}
}

func testRemoveNodeRotatesPSK(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.New(t).Store
	m := initMesh(t, s, "10.1.0.0/24")
	p, err := s.PSKs(ctx)
	if err != nil || !bytes.Equal(p.Current, m.PSK) || p.Previous != nil || !p.PreviousUntil.IsZero() {
		t.Fatalf("PSKs before any removal = %+v, %v; want the mesh PSK alone", p, err)
	}
	id, hash := Token(t, s, true)
	if _, err := Join(s, id, hash, "n0", Key(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RemoveNode(ctx, "nobody", Now.Add(time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if p2, _ := s.PSKs(ctx); !bytes.Equal(p2.Current, m.PSK) || p2.Previous != nil {
		t.Fatalf("failed removal rotated the PSK: %+v", p2)
	}
	until := Now.Add(5 * time.Minute)
	if _, _, err := s.RemoveNode(ctx, "n0", until); err != nil {
		t.Fatal(err)
	}
	p, err = s.PSKs(ctx)
	if err != nil || len(p.Current) != 32 || bytes.Equal(p.Current, m.PSK) || !bytes.Equal(p.Previous, m.PSK) || !p.PreviousUntil.Equal(until) {
		t.Fatalf("PSKs after removal = %+v, %v; want a fresh current, the old as previous until %v", p, err, until)
	}
}

func testServices(t *testing.T, h Harness) {
	ctx := context.Background()
	in := newMesh(t, h, "10.1.0.0/16")
	s := in.Store
	id, hash := Token(t, s, true)
	k := Key(t)
	dns := []api.Service{{Name: api.ServiceDNS, Protocol: "udp", Port: 53}}
	res, err := s.Join(ctx, store.JoinParams{TokenID: id, TokenSecretHash: hash, Name: "ns1", PublicKey: k,
		NewNodeID: "id-ns1", CredentialHash: []byte("c"), Now: Now, Services: dns})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Node.Services, dns) {
		t.Fatalf("Join().Node.Services = %v, want %v", res.Node.Services, dns)
	}
	services := func() []api.Service { t.Helper(); return onlyNode(t, s).Services }
	if got := services(); !reflect.DeepEqual(got, dns) {
		t.Fatalf("Nodes()[0].Services = %v, want %v", got, dns)
	}
	both := append(dns, api.Service{Name: "http", Protocol: "tcp", Port: 80})
	v0, _ := s.Version(ctx)
	v, err := s.SetServices(ctx, res.Node.ID, both)
	if err != nil || v != v0+1 {
		t.Fatalf("SetServices() = %d, %v; want version %d", v, err, v0+1)
	}
	s = in.Reopen(t)
	if got := services(); !reflect.DeepEqual(got, both) {
		t.Fatalf("after reopen: Services = %v, want %v", got, both)
	}
	if _, err := s.SetServices(ctx, "nope", dns); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetServices(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.SetServices(ctx, res.Node.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := services(); got != nil {
		t.Fatalf("after SetServices(nil): Services = %v, want none", got)
	}
	if _, err := s.Join(ctx, store.JoinParams{TokenID: id, TokenSecretHash: hash, Name: "ns1", PublicKey: k,
		NewNodeID: "id-x", CredentialHash: []byte("c"), Now: Now, Services: dns}); err != nil {
		t.Fatal(err)
	}
	if got := services(); !reflect.DeepEqual(got, dns) {
		t.Fatalf("after rejoin: Services = %v, want %v", got, dns)
	}
}

func testSSHFields(t *testing.T, h Harness) {
	ctx := context.Background()
	in := newMesh(t, h, "10.1.0.0/16")
	s := in.Store
	id, hash := Token(t, s, true)
	hk := Key(t)
	want := store.SSH{Endpoint: netip.MustParseAddrPort("192.0.2.7:22"), HostKey: &hk, User: "tunnelmesh", PacketPort: 7600}
	eps := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:51820"), netip.MustParseAddrPort("[2001:db8::7]:51820")}
	res, err := s.Join(ctx, store.JoinParams{TokenID: id, TokenSecretHash: hash, Name: "b", PublicKey: Key(t),
		NewNodeID: "id-b", CredentialHash: []byte("c"), Now: Now, Endpoints: eps,
		SSHEndpoint: want.Endpoint, SSHHostKey: want.HostKey, SSHUser: want.User, SSHPacketPort: want.PacketPort})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Node.SSH(); !got.Equal(want) {
		t.Fatalf("Join().Node.SSH() = %+v, want %+v", got, want)
	}
	stored := func() store.Node { t.Helper(); return onlyNode(t, s) }
	if got := stored(); !got.SSH().Equal(want) || !reflect.DeepEqual(got.Endpoints, eps) {
		t.Fatalf("stored SSH, endpoints = %+v, %v; want %+v, %v", got.SSH(), got.Endpoints, want, eps)
	}
	hk2 := Key(t)
	want = store.SSH{Endpoint: netip.MustParseAddrPort("[2001:db8::1]:2222"), HostKey: &hk2, User: "mesh", PacketPort: 65535}
	if _, err := s.SetEndpoints(ctx, res.Node.ID, nil, want); err != nil {
		t.Fatal(err)
	}
	s = in.Reopen(t)
	if got := stored(); !got.SSH().Equal(want) || got.Endpoints != nil {
		t.Fatalf("after SetEndpoints and reopen: SSH, endpoints = %+v, %v; want %+v, none", got.SSH(), got.Endpoints, want)
	}
	sshgw := store.SSH{Endpoint: netip.MustParseAddrPort("192.0.2.7:2222")}
	if _, err := s.SetEndpoints(ctx, res.Node.ID, eps[:1], sshgw); err != nil {
		t.Fatal(err)
	}
	if got := stored(); !got.SSH().Equal(sshgw) || got.SSHHostKey != nil || !reflect.DeepEqual(got.Endpoints, eps[:1]) {
		t.Fatalf("after SetEndpoints to an sshgw endpoint: SSH = %+v, want %+v", got.SSH(), sshgw)
	}
	if _, err := s.SetEndpoints(ctx, "nope", nil, store.SSH{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetEndpoints(unknown) = %v, want ErrNotFound", err)
	}
}

// testTouch: Touch moves last-seen forward only and changes no version.
func testTouch(t *testing.T, h Harness) {
	ctx := context.Background()
	s := newMesh(t, h, "10.1.0.0/24").Store
	id, hash := Token(t, s, true)
	res, err := Join(s, id, hash, "a", Key(t))
	if err != nil {
		t.Fatal(err)
	}
	later := Now.Add(time.Minute)
	if err := s.Touch(ctx, res.Node.ID, later); err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(ctx, res.Node.ID, Now); err != nil {
		t.Fatal(err)
	}
	v, nodes, err := s.Nodes(ctx)
	if err != nil || len(nodes) != 1 || !nodes[0].LastSeen.Equal(later) || v != res.Version {
		t.Fatalf("after Touch: v%d %+v, %v; want last seen %v, version %d", v, nodes, err, later, res.Version)
	}
}

// testSecrets: a secret is created once; later calls and other replicas
// get the stored value.
func testSecrets(t *testing.T, h Harness) {
	in := h.New(t)
	sec := optional[store.Secrets](t, in, "the store keeps no secrets (single registry)")
	ctx := context.Background()
	v, err := sec.Secret(ctx, "admin", func() ([]byte, error) { return []byte("first"), nil })
	if err != nil || string(v) != "first" {
		t.Fatalf("Secret = %q, %v; want first", v, err)
	}
	v, err = in.other(t).(store.Secrets).Secret(ctx, "admin", func() ([]byte, error) { return []byte("second"), nil })
	if err != nil || string(v) != "first" {
		t.Fatalf("Secret again = %q, %v; want the stored first", v, err)
	}
	if _, err := sec.Secret(ctx, "broken", func() ([]byte, error) { return nil, errors.New("no entropy") }); err == nil {
		t.Fatal("Secret stored nothing and reported no error")
	}
	v, err = sec.Secret(ctx, "broken", func() ([]byte, error) { return []byte("ok"), nil })
	if err != nil || string(v) != "ok" {
		t.Fatalf("Secret after a failed create = %q, %v", v, err)
	}
}

// testChanges: a change made through one replica is reported to a watcher
// on another, naming the node when it touched one node's record only.
func testChanges(t *testing.T, h Harness) {
	in := h.New(t)
	ch := optional[store.Changes](t, in, "the store has no change feed (single registry)")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	initMesh(t, in.Store, "10.1.0.0/24")
	writer := in.other(t)
	got := make(chan store.Change, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ch.WatchChanges(ctx, func(c store.Change) { got <- c })
	}()
	next := func(what string) store.Change {
		t.Helper()
		select {
		case c := <-got:
			return c
		case <-time.After(30 * time.Second):
			t.Fatalf("%s not reported within 30s", what)
			return store.Change{}
		}
	}
	// The first report (zero) says the watch is listening.
	if c := next("watch start"); c != (store.Change{}) {
		t.Fatalf("first report = %+v, want a zero Change (reload)", c)
	}
	v, err := writer.BumpVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := next("version bump"); c != (store.Change{Version: v}) {
		t.Fatalf("reported %+v, want version %d and no node", c, v)
	}
	tok, th := Token(t, writer, true)
	res, err := Join(writer, tok, th, "alpha", Key(t))
	if err != nil {
		t.Fatal(err)
	}
	if c := next("join"); c != (store.Change{Version: res.Version, Node: res.Node.ID}) {
		t.Fatalf("join reported %+v, want version %d, node %s", c, res.Version, res.Node.ID)
	}
	v, err = writer.SetEndpoints(ctx, res.Node.ID, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1")}, store.SSH{})
	if err != nil {
		t.Fatal(err)
	}
	if c := next("endpoint change"); c != (store.Change{Version: v, Node: res.Node.ID}) {
		t.Fatalf("endpoint change reported %+v, want version %d, node %s", c, v, res.Node.ID)
	}
	// A removal rotates the PSK too: not a change of one node's record.
	_, v, err = writer.RemoveNode(ctx, res.Node.ID, Now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if c := next("removal"); c != (store.Change{Version: v}) {
		t.Fatalf("removal reported %+v, want version %d and no node", c, v)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("WatchChanges did not return after its context ended")
	}
}

// testNodeReader: one node is read with the version it was read at.
func testNodeReader(t *testing.T, h Harness) {
	in := newMesh(t, h, "10.1.0.0/24")
	nr := optional[store.NodeReader](t, in, "the store reads no single node")
	ctx := context.Background()
	tok, th := Token(t, in.Store, true)
	a, err := Join(in.Store, tok, th, "alpha", Key(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Join(in.Store, tok, th, "beta", Key(t)); err != nil {
		t.Fatal(err)
	}
	want, err := in.Store.SetEndpoints(ctx, a.Node.ID, []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:7")}, store.SSH{})
	if err != nil {
		t.Fatal(err)
	}
	v, n, err := nr.Node(ctx, a.Node.ID)
	if err != nil || v != want {
		t.Fatalf("Node = version %d, %v; want version %d", v, err, want)
	}
	_, all, err := in.Store.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(all, func(x store.Node) bool { return x.ID == a.Node.ID })
	if i < 0 || !reflect.DeepEqual(n, all[i]) {
		t.Fatalf("Node = %+v, want what Nodes lists: %+v", n, all)
	}
	if v, _, err := nr.Node(ctx, TestID("nobody")); !errors.Is(err, store.ErrNotFound) || v != want {
		t.Fatalf("Node of an unknown ID = version %d, %v; want version %d, ErrNotFound", v, err, want)
	}
}

// testPolicies: policy versions are stored once each, listed newest first,
// read back and pruned.
func testPolicies(t *testing.T, h Harness) {
	in := h.New(t)
	ps := optional[store.Policies](t, in, "the store keeps no policy versions (single registry: policystore's directory)")
	ctx := context.Background()
	if vs, err := ps.PolicyVersions(ctx); err != nil || len(vs) != 0 {
		t.Fatalf("PolicyVersions of an empty store = %v, %v", vs, err)
	}
	for v := uint64(1); v <= 3; v++ {
		if err := ps.CreatePolicyVersion(ctx, store.PolicyDoc{Version: v, CreatedAt: Now, Doc: fmt.Sprintf("# v%d\n", v)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ps.CreatePolicyVersion(ctx, store.PolicyDoc{Version: 2, CreatedAt: Now, Doc: "other"}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("second create of version 2 = %v, want ErrAlreadyExists", err)
	}
	d, err := ps.PolicyVersion(ctx, 2)
	if err != nil || d.Doc != "# v2\n" || !d.CreatedAt.Equal(Now) {
		t.Fatalf("PolicyVersion(2) = %+v, %v", d, err)
	}
	if err := ps.DeletePolicyVersion(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.PolicyVersion(ctx, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted version = %v, want ErrNotFound", err)
	}
	if vs, err := ps.PolicyVersions(ctx); err != nil || !reflect.DeepEqual(vs, []uint64{3, 2}) {
		t.Fatalf("PolicyVersions = %v, %v; want [3 2]", vs, err)
	}
}

// testReplays: a signature hash is new once across replicas, and pruned
// hashes are forgotten.
func testReplays(t *testing.T, h Harness) {
	in := h.New(t)
	r := optional[store.Replays](t, in, "the store keeps no replay cache (single registry: replaylog's file)")
	other := in.other(t).(store.Replays)
	ctx := context.Background()
	h1, h2 := sha256.Sum256([]byte("sig1")), sha256.Sum256([]byte("sig2"))
	if fresh, err := r.AddReplay(ctx, h1, Now); err != nil || !fresh {
		t.Fatalf("first AddReplay = %v, %v; want new", fresh, err)
	}
	if fresh, err := other.AddReplay(ctx, h1, Now.Add(time.Second)); err != nil || fresh {
		t.Fatalf("AddReplay of a recorded hash on another replica = %v, %v; want a replay", fresh, err)
	}
	if fresh, err := other.AddReplay(ctx, h2, Now.Add(time.Minute)); err != nil || !fresh {
		t.Fatalf("AddReplay of another hash = %v, %v; want new", fresh, err)
	}
	if err := r.PruneReplays(ctx, Now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if fresh, err := r.AddReplay(ctx, h1, Now.Add(2*time.Minute)); err != nil || !fresh {
		t.Fatalf("AddReplay after its hash was pruned = %v, %v; want new", fresh, err)
	}
	if fresh, err := r.AddReplay(ctx, h2, Now.Add(2*time.Minute)); err != nil || fresh {
		t.Fatalf("AddReplay of a hash younger than the prune = %v, %v; want a replay", fresh, err)
	}

	// Many at once, on both replicas: each of 50 hashes is added 4 times
	// (twice through each replica); exactly one of its adds is new.
	const hashes, each = 50, 4
	var freshCount [hashes]atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, hashes*each)
	for i := range hashes * each {
		wg.Add(1)
		go func() {
			defer wg.Done()
			via := r
			if i%2 == 1 {
				via = other
			}
			fresh, err := via.AddReplay(ctx, sha256.Sum256([]byte("burst"+strconv.Itoa(i%hashes))), Now.Add(3*time.Minute))
			if err != nil {
				errs <- err
				return
			}
			if fresh {
				freshCount[i%hashes].Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent AddReplay: %v", err)
	}
	for i := range freshCount {
		if n := freshCount[i].Load(); n != 1 {
			t.Fatalf("hash %d added %d times at once: %d adds were new, want 1", i, each, n)
		}
	}
}

// testScrapeTokens: scrape tokens are stored up to the limit, listed and
// deleted.
func testScrapeTokens(t *testing.T, h Harness) {
	in := h.New(t)
	st := optional[store.ScrapeTokens](t, in, "the store keeps no scrape tokens (single registry: scrapecred's file)")
	ctx := context.Background()
	a := store.ScrapeToken{ID: "a1", Name: "prom", CreatedAt: Now, Hash: "h1"}
	b := store.ScrapeToken{ID: "b2", CreatedAt: Now.Add(time.Second), ExpiresAt: Now.Add(time.Hour), Hash: "h2"}
	if err := st.CreateScrapeToken(ctx, a, 2); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateScrapeToken(ctx, a, 2); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate ID = %v, want ErrAlreadyExists", err)
	}
	if err := st.CreateScrapeToken(ctx, b, 2); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateScrapeToken(ctx, store.ScrapeToken{ID: "c3", CreatedAt: Now, Hash: "h3"}, 2); !errors.Is(err, store.ErrRangeFull) {
		t.Fatalf("create over the limit = %v, want ErrRangeFull", err)
	}
	list, err := st.ScrapeTokens(ctx)
	if err != nil || len(list) != 2 || list[0] != a || !list[1].ExpiresAt.Equal(b.ExpiresAt) || list[1].Hash != "h2" {
		t.Fatalf("ScrapeTokens = %+v, %v", list, err)
	}
	if err := st.DeleteScrapeToken(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteScrapeToken(ctx, "a1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice = %v, want ErrNotFound", err)
	}
}

// testRegistries: replicas' URLs are registered once each, sorted, with a
// version bump only for a new one.
func testRegistries(t *testing.T, h Harness) {
	in := h.New(t)
	rs := optional[store.Registries](t, in, "the store keeps no registry URLs (single registry)")
	ctx := context.Background()
	s := in.Store
	initMesh(t, s, "10.1.0.0/24")
	v0, _ := s.Version(ctx)
	if got, err := rs.Registries(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Registries before any = %v, %v; want none", got, err)
	}
	for i, u := range []string{"https://b.example:8443", "https://a.example:8443"} {
		v, err := rs.RegisterRegistry(ctx, u, Now)
		if err != nil || v != v0+uint64(i)+1 {
			t.Fatalf("RegisterRegistry(%s) = %d, %v; want version %d", u, v, err, v0+uint64(i)+1)
		}
	}
	if v, err := rs.RegisterRegistry(ctx, "https://b.example:8443", Now); err != nil || v != 0 {
		t.Fatalf("RegisterRegistry again = %d, %v; want 0 (no change)", v, err)
	}
	got, err := rs.Registries(ctx)
	want := []string{"https://a.example:8443", "https://b.example:8443"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Registries = %v, %v; want %v", got, err, want)
	}
	if v, _ := s.Version(ctx); v != v0+2 {
		t.Fatalf("version after 2 new registrations = %d, want %d", v, v0+2)
	}

	// Replicas that stop registering expire, with their relays; the
	// others stay.
	rel, ok := s.(store.Relays)
	if !ok {
		t.Fatal("a store that keeps registry URLs keeps relays too")
	}
	if _, err := rel.RegisterRelay(ctx, api.Relay{ID: "r-a", URL: "wss://a.example:8443/relay"}, Now); err != nil {
		t.Fatal(err)
	}
	if _, err := rel.RegisterRelay(ctx, api.Relay{ID: "r-b", URL: "wss://b.example:8443/relay"}, Now); err != nil {
		t.Fatal(err)
	}
	later := Now.Add(time.Hour)
	if v, err := rs.RegisterRegistry(ctx, "https://b.example:8443", later); err != nil || v != 0 {
		t.Fatalf("refresh of a registered URL = %d, %v; want 0 (no change)", v, err)
	}
	if v, err := rel.RegisterRelay(ctx, api.Relay{ID: "r-b", URL: "wss://b.example:8443/relay"}, later); err != nil || v != 0 {
		t.Fatalf("refresh of a registered relay = %d, %v; want 0 (no change)", v, err)
	}
	if v, err := rs.ExpireReplicas(ctx, Now); err != nil || v != 0 {
		t.Fatalf("ExpireReplicas(before every registration) = %d, %v; want 0 (none removed)", v, err)
	}
	vBefore, _ := s.Version(ctx)
	v, err := rs.ExpireReplicas(ctx, later.Add(-time.Minute))
	if err != nil || v != vBefore+1 {
		t.Fatalf("ExpireReplicas = %d, %v; want version %d (one bump)", v, err, vBefore+1)
	}
	if got, err := rs.Registries(ctx); err != nil || !reflect.DeepEqual(got, []string{"https://b.example:8443"}) {
		t.Fatalf("Registries after expiry = %v, %v; want only the refreshed one", got, err)
	}
	if got, err := rel.Relays(ctx); err != nil || len(got) != 1 || got[0].ID != "r-b" {
		t.Fatalf("Relays after expiry = %+v, %v; want only r-b", got, err)
	}
	// An expired replica that comes back is listed again.
	if v, err := rs.RegisterRegistry(ctx, "https://a.example:8443", later); err != nil || v == 0 {
		t.Fatalf("RegisterRegistry after expiry = %d, %v; want a new version", v, err)
	}
}

// testRelays: replicas' relays are registered (replaced by ID) with a
// version bump; a node's home relay is recorded, bumping the version only
// when it changes, and kept across a rejoin.
func testRelays(t *testing.T, h Harness) {
	in := h.New(t)
	rs := optional[store.Relays](t, in, "the store keeps no relays (single registry)")
	ctx := context.Background()
	s := in.Store
	initMesh(t, s, "10.1.0.0/24")
	v0, _ := s.Version(ctx)
	for _, r := range []api.Relay{{ID: "r-b", URL: "wss://b/relay", TLSPin: "pb"}, {ID: "r-a", URL: "wss://old/relay"}, {ID: "r-a", URL: "wss://a/relay", TLSPin: "pa"}} {
		if _, err := rs.RegisterRelay(ctx, r, Now); err != nil {
			t.Fatal(err)
		}
	}
	got, err := rs.Relays(ctx)
	want := []api.Relay{{ID: "r-a", URL: "wss://a/relay", TLSPin: "pa"}, {ID: "r-b", URL: "wss://b/relay", TLSPin: "pb"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Relays = %+v, %v; want %+v", got, err, want)
	}
	if v, _ := s.Version(ctx); v != v0+3 {
		t.Fatalf("version after 3 registrations = %d, want %d", v, v0+3)
	}
	id, hash := Token(t, s, true)
	k := Key(t)
	res, err := Join(s, id, hash, "a", k)
	if err != nil {
		t.Fatal(err)
	}
	v, err := rs.SetHomeRelay(ctx, res.Node.ID, "r-b")
	if err != nil || v != res.Version+1 {
		t.Fatalf("SetHomeRelay = %d, %v; want version %d", v, err, res.Version+1)
	}
	if v, err := rs.SetHomeRelay(ctx, res.Node.ID, "r-b"); err != nil || v != 0 {
		t.Fatalf("SetHomeRelay unchanged = %d, %v; want 0", v, err)
	}
	if _, err := rs.SetHomeRelay(ctx, "nope", "r-b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetHomeRelay(unknown) = %v, want ErrNotFound", err)
	}
	res, err = Join(s, id, hash, "a", k)
	if err != nil || res.Node.HomeRelay != "r-b" {
		t.Fatalf("rejoin: home relay %q, %v; want r-b kept", res.Node.HomeRelay, err)
	}
	res, err = s.Join(ctx, store.JoinParams{TokenID: id, TokenSecretHash: hash, Name: "b", PublicKey: Key(t),
		NewNodeID: TestID("b"), CredentialHash: []byte("c"), Now: Now, HomeRelay: "r-a"})
	if err != nil || res.Node.HomeRelay != "r-a" {
		t.Fatalf("join with a home relay: %q, %v; want r-a", res.Node.HomeRelay, err)
	}
	if _, nodes, _ := s.Nodes(ctx); len(nodes) != 2 || nodes[0].HomeRelay != "r-b" || nodes[1].HomeRelay != "r-a" {
		t.Fatalf("stored home relays = %+v", nodes)
	}
}
