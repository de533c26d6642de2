package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/metrics"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/policystore"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/sqlite"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// silentShared is a store other replicas share whose change feed has not
// reported anything yet (a notification still on its way).
type silentShared struct {
	*sqlite.Store
	versions *atomic.Int32 // calls of Version
}

func (s silentShared) Version(ctx context.Context) (uint64, error) {
	s.versions.Add(1)
	return s.Store.Version(ctx)
}

func (silentShared) WatchChanges(ctx context.Context, fn func(store.Change)) error {
	<-ctx.Done()
	return nil
}

// A node that joined through another replica a moment ago is not refused
// by this one while the change notification is still on its way: an
// unknown node makes the replica check the store's version first.
func TestUnknownNodeCatchesUp(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Now()}
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	st := silentShared{sq, new(atomic.Int32)}
	s := newReplica(t, ctx, st, clock)
	// The join another replica made: straight into the store.
	tok, _ := jointoken.New("pin")
	h := tok.SecretHash()
	if err := st.CreateToken(ctx, store.Token{ID: tok.ID, SecretHash: h[:], CreatedAt: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	k, _ := nodekey.Generate()
	cred := nodeauth.Credential{NodeID: "n0123456789abcdef0123", Secret: "secret-of-the-node"}
	ch := cred.SecretHash()
	if _, err := st.Join(ctx, store.JoinParams{TokenID: tok.ID, TokenSecretHash: h, Name: "fresh", PublicKey: k.Public(),
		NewNodeID: cred.NodeID, CredentialHash: ch[:], Now: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, api.PathNetmap+"?since=0", nil)
	nodeauth.Sign(req, nil, cred, k, clock.Now())
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("netmap of a node joined through another replica: %d %s, want 200", rec.Code, rec.Body)
	}
	// Unknown nodes are still refused, and a burst of them checks the
	// store's version at most once per catchUpInterval.
	before := st.versions.Load()
	start := time.Now()
	for range 50 {
		other := nodeauth.Credential{NodeID: "n9999999999abcdef0123", Secret: "x"}
		req = httptest.NewRequest(http.MethodGet, api.PathNetmap+"?since=0", nil)
		nodeauth.Sign(req, nil, other, k, clock.Now())
		rec = httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("unknown node: %d, want 401", rec.Code)
		}
	}
	if n, most := st.versions.Load()-before, int32(time.Since(start)/catchUpInterval)+1; n > most {
		t.Fatalf("50 unknown nodes checked the store %d times, want at most %d", n, most)
	}
}

// fedShared is a store other replicas share whose change feed is fed by
// the test, and that counts the reloads of every node.
type fedShared struct {
	*sqlite.Store
	feed  chan store.Change
	loads *atomic.Int32 // calls of Nodes
}

func (s fedShared) Nodes(ctx context.Context) (uint64, []store.Node, error) {
	s.loads.Add(1)
	return s.Store.Nodes(ctx)
}

func (s fedShared) WatchChanges(ctx context.Context, fn func(store.Change)) error {
	for {
		select {
		case c := <-s.feed:
			fn(c)
		case <-ctx.Done():
			return nil
		}
	}
}

// A change another replica made to one node reloads that node only; a
// replica that missed a change, or hears of one after another was made,
// reloads every node and converges.
func TestFollowOneNodeChange(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := &fakeClock{t: time.Now()}
	st := newFedShared(t, ctx)
	sq := st.Store
	s := newReplica(t, ctx, st, clock)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	tok, _ := jointoken.New("pin")
	h := tok.SecretHash()
	if err := st.CreateToken(ctx, store.Token{ID: tok.ID, SecretHash: h[:], Reusable: true, CreatedAt: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	// The changes another replica makes: straight into the store.
	join := func(name string) store.JoinResult {
		t.Helper()
		k, _ := nodekey.Generate()
		res, err := st.Join(ctx, store.JoinParams{TokenID: tok.ID, TokenSecretHash: h, Name: name, PublicKey: k.Public(),
			NewNodeID: "n" + strings.Repeat(name[:1], 20), CredentialHash: []byte("c"), Now: clock.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	port := uint16(1000)
	move := func(id string) uint64 {
		t.Helper()
		port++
		v, err := st.SetEndpoints(ctx, id, []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)}, store.SSH{})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// notify feeds c and waits until the snapshot is at c's version (the
	// store's for a zero Change).
	notify := func(c store.Change) {
		t.Helper()
		select {
		case st.feed <- c:
		case <-time.After(30 * time.Second):
			t.Fatal("change feed not read within 30s")
		}
		want := c.Version
		if want == 0 {
			var err error
			if want, err = sq.Version(ctx); err != nil {
				t.Fatal(err)
			}
		}
		for deadline := time.Now().Add(30 * time.Second); s.Version() < want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("snapshot at version %d 30s after change %+v", s.Version(), c)
			}
		}
	}
	// check reports whether the snapshot holds what the store holds, and
	// how many times every node was loaded since the last check.
	var loadsSeen int32
	check := func(what string, wantLoads int32) {
		t.Helper()
		v, nodes, err := sq.Nodes(ctx) // not counted
		if err != nil {
			t.Fatal(err)
		}
		snap := s.hub.current()
		if snap.version != v || len(snap.order) != len(nodes) {
			t.Fatalf("%s: snapshot at version %d with %d nodes, store at %d with %d", what, snap.version, len(snap.order), v, len(nodes))
		}
		for _, n := range nodes {
			e := snap.byID[n.ID]
			if e == nil || !slices.Equal(e.node.Endpoints, n.Endpoints) || e.node.Name != n.Name {
				t.Fatalf("%s: snapshot's %s = %+v, store's %+v", what, n.ID, e, n)
			}
		}
		if got := st.loads.Load() - loadsSeen; got != wantLoads {
			t.Fatalf("%s: every node loaded %d times, want %d", what, got, wantLoads)
		}
		loadsSeen = st.loads.Load()
	}
	check("start", 1)

	a := join("alpha")
	notify(store.Change{Version: a.Version, Node: a.Node.ID})
	check("a join", 0)
	b := join("bravo")
	notify(store.Change{Version: b.Version, Node: b.Node.ID})
	notify(store.Change{Version: move(a.Node.ID), Node: a.Node.ID})
	check("a join and an endpoint change", 0)

	// A change whose notification was lost: the next one finds the
	// snapshot a version behind it, and reloads everything.
	move(a.Node.ID)
	notify(store.Change{Version: move(b.Node.ID), Node: b.Node.ID})
	check("after a lost notification", 1)

	// A notification that arrives after a later change was made.
	v := move(a.Node.ID)
	move(b.Node.ID)
	notify(store.Change{Version: v, Node: a.Node.ID})
	check("a change made meanwhile", 1)

	// A change of anything else, and a reconnect, reload everything.
	v, err := st.BumpVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	notify(store.Change{Version: v})
	check("a change of the mesh", 1)
	move(a.Node.ID)
	notify(store.Change{})
	check("a reconnect", 1)
}

// newFedShared is a fedShared on a new SQLite store.
func newFedShared(t *testing.T, ctx context.Context) fedShared {
	t.Helper()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	return fedShared{sq, make(chan store.Change), new(atomic.Int32)}
}

// newReplica makes st's mesh (10.7.0.0/16) and a server on st, as one
// replica of those that share it.
func newReplica(t *testing.T, ctx context.Context, st store.Store, clock *fakeClock) *Server {
	t.Helper()
	return newPolicyReplica(t, ctx, st, clock, nil)
}

// newPolicyReplica is newReplica with pol as its Policy (none when nil).
func newPolicyReplica(t *testing.T, ctx context.Context, st store.Store, clock *fakeClock, pol Policy) *Server {
	t.Helper()
	mesh, err := st.InitMesh(ctx, netip.MustParsePrefix("10.7.0.0/16"), clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	met, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, st, Settings{Mesh: mesh, OnlineTimeout: 30 * time.Second, Pin: "pin",
		AdminCredential: "admin-credential-0123456789", Metrics: met, Now: clock.Now, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A policy another replica applied is in force here even when this
// replica's own full reload passed its version before the notification
// arrived (the notification is then skipped as already loaded).
func TestFullReloadLoadsPolicy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := &fakeClock{t: time.Now()}
	st := newFedShared(t, ctx)
	polDir := t.TempDir() // the policy versions both replicas keep
	here, err := policystore.Open(polDir, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := newPolicyReplica(t, ctx, st, clock, here)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// The other replica's apply: a stored version, then a version bump
	// whose notification has not arrived yet.
	there, err := policystore.Open(polDir, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	put, err := there.Put([]byte("tags: [web]\nrules:\n  - {name: ping, from: \"*\", to: \"*\", proto: icmp}\n"), 0, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	applied, err := st.BumpVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// This replica's own change reloads everything, past that version.
	if err := s.Changed(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case st.feed <- store.Change{Version: applied}:
	case <-time.After(30 * time.Second):
		t.Fatal("change feed not read within 30s")
	}
	if cur, _ := here.Current(); cur.Version != put.Version {
		t.Fatalf("policy version %d in force after a reload past the apply (mesh version %d), want %d", cur.Version, s.Version(), put.Version)
	}
}
