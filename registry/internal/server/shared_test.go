package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/metrics"
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

func (silentShared) WatchChanges(ctx context.Context, fn func(uint64)) error {
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
	mesh, err := st.InitMesh(ctx, netip.MustParsePrefix("10.7.0.0/16"), clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	met, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, st, Settings{Mesh: mesh, OnlineTimeout: 30 * time.Second, Pin: "pin",
		AdminCredential: "admin-credential-0123456789", Metrics: met, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
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
