package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// watchNode joins a node to s's store and returns its credential and key.
func watchNode(t *testing.T, s *Server, st store.Store, name string, now time.Time) (nodeauth.Credential, nodekey.PrivateKey) {
	t.Helper()
	ctx := context.Background()
	tok, _ := jointoken.New("pin")
	h := tok.SecretHash()
	if err := st.CreateToken(ctx, store.Token{ID: tok.ID, SecretHash: h[:], CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	k, _ := nodekey.Generate()
	cred := nodeauth.Credential{NodeID: "n0123456789abcdef" + name, Secret: "secret-of-" + name}
	ch := cred.SecretHash()
	res, err := st.Join(ctx, store.JoinParams{TokenID: tok.ID, TokenSecretHash: h, Name: name, PublicKey: k.Public(),
		NewNodeID: cred.NodeID, CredentialHash: ch[:], Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.refresh(ctx, res.Version); err != nil {
		t.Fatal(err)
	}
	return cred, k
}

func serve(s *Server, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// A captured netmap watch replayed is refused, whether the original was
// answered at once, after its wait, or without waiting; and the replay
// does not mark the node seen.
func TestNetmapWatchReplayRefused(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	s, st := newTestServer(t, clock, nil)
	cred, key := watchNode(t, s, st, "alpha", clock.Now())
	for _, tc := range []struct {
		name  string
		query func(v uint64) string
		code  int
	}{
		{"whole netmap", func(uint64) string { return "since=0" }, http.StatusOK},
		{"after waiting", func(v uint64) string { return "since=" + strconv.FormatUint(v, 10) + "&wait=1ms" }, http.StatusNotModified},
		{"without waiting", func(v uint64) string { return "since=" + strconv.FormatUint(v, 10) + "&wait=0s" }, http.StatusNotModified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.markSeen(context.Background(), cred.NodeID, true); err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, api.PathNetmap+"?"+tc.query(s.Version()), nil)
			nodeauth.Sign(req, nil, cred, key, clock.Now())
			replay := req.Clone(context.Background())
			if rec := serve(s, req); rec.Code != tc.code {
				t.Fatalf("watch: %d %s, want %d", rec.Code, rec.Body, tc.code)
			}
			// Offline now: a watch accepted would bring it back online
			// (a new version).
			clock.Add(time.Minute)
			if err := s.sweepOnline(context.Background()); err != nil {
				t.Fatal(err)
			}
			v := s.Version()
			if rec := serve(s, replay); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "replayed") {
				t.Fatalf("replayed watch: %d %s, want 401 replayed", rec.Code, rec.Body)
			}
			if s.Version() != v || s.hub.current().byID[cred.NodeID].node.Online {
				t.Fatalf("a replayed watch marked the node seen (version %d, was %d)", s.Version(), v)
			}
		})
	}
}
