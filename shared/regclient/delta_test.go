package regclient

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// A delta the client cannot apply (on a version it does not hold) makes it
// fetch the whole netmap at once; a delta it can apply is applied; a client
// asks for deltas only with the base the registry named.
func TestNetmapDeltaGapFetchesWhole(t *testing.T) {
	k, err := nodekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	peer := func(id, name string) api.Node { return api.Node{ID: id, Name: name, PublicKey: k.Public()} }
	var mu sync.Mutex
	var queries []string
	rp := newReplica(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		queries = append(queries, q.Get("since")+"/"+q.Get(api.NetmapDeltaParam))
		mu.Unlock()
		var d api.NetmapDelta
		switch q.Get("since") {
		case "0":
			d.Netmap = api.Netmap{Version: 7, Peers: []api.Node{peer("a", "alpha"), peer("c", "charlie")}}
		case "5": // a delta on a version the client does not hold
			d = api.NetmapDelta{Netmap: api.Netmap{Version: 9}, DeltaFrom: 4}
		case "7":
			d = api.NetmapDelta{Netmap: api.Netmap{Version: 8, Peers: []api.Node{peer("b", "bravo")}}, DeltaFrom: 7, Removed: []string{"c"}}
		}
		w.Header().Set(api.NetmapBaseHeader, "base-1")
		w.Header().Set("Content-Type", "application/json")
		d.Self.PublicKey = k.Public()
		json.NewEncoder(w).Encode(d)
	})
	c := testClient(t, rp, rp.srv.URL)
	ctx := context.Background()
	nm, err := c.Netmap(ctx, 0, 0)
	if err != nil || nm.Version != 7 {
		t.Fatalf("first netmap = %+v, %v", nm, err)
	}
	nm, err = c.Netmap(ctx, 7, 0)
	if err != nil || nm.Version != 8 || !slices.Equal(names(nm), []string{"alpha", "bravo"}) {
		t.Fatalf("netmap after a delta = %+v, %v, want version 8 with alpha, bravo", nm, err)
	}
	// The client holds version 8; a caller asking since 5 gets no delta
	// base, and the server's delta on 4 does not apply: whole netmap.
	nm, err = c.Netmap(ctx, 5, 0)
	if err != nil || nm.Version != 7 || !slices.Equal(names(nm), []string{"alpha", "charlie"}) {
		t.Fatalf("netmap after an unusable delta = %+v, %v, want the whole version 7", nm, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"0/", "7/base-1", "5/", "0/"}; !slices.Equal(queries, want) {
		t.Fatalf("queries (since/delta) = %q, want %q", queries, want)
	}
}

func names(nm *api.Netmap) []string {
	var out []string
	for _, p := range nm.Peers {
		out = append(out, p.Name)
	}
	return out
}
