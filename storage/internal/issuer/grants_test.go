package issuer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/storage/internal/creds"
)

// identityActions reads the identities file: node identity name to actions.
func identityActions(t *testing.T, dir string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, creds.IdentitiesFile))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Identities []struct {
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"identities"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, id := range f.Identities {
		if strings.HasPrefix(id.Name, "node-") {
			out[id.Name] = strings.Join(id.Actions, " ")
		}
	}
	return out
}

// TestPolicyGrants: the storage grants in the node's filter decide each
// identity's actions; a change rewrites the identities and reloads
// SeaweedFS at once; a policy granting nothing grants nothing (not the
// configured default); without grants every member gets the buckets.
func TestPolicyGrants(t *testing.T) {
	dir := t.TempDir()
	st, err := creds.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	reloads := 0
	s := &Service{Store: st, Buckets: []string{"mesh"}, Region: "us-east-1", Reload: func() error { reloads++; return nil }}
	self, a, b := key(t), key(t), key(t)
	netmap := func(v uint64, g *api.StorageGrants) *api.Netmap {
		return &api.Netmap{Version: v, Self: api.Node{ID: "nself", Name: "store", PublicKey: self.Public()},
			Peers:  []api.Node{{ID: "na", Name: "Web1", PublicKey: a.Public()}, {ID: "nb", Name: "phone", PublicKey: b.Public()}},
			Filter: &api.Filter{PolicyVersion: v, Rules: []api.FilterRule{}, Storage: g}}
	}
	apply := func(v uint64, g *api.StorageGrants) {
		t.Helper()
		if err := s.ApplyNetmap(netmap(v, g)); err != nil {
			t.Fatal(err)
		}
	}
	apply(1, &api.StorageGrants{Nodes: map[string][]string{"web1": {"List:mesh", "Read:mesh", "Write:logs", "Write:mesh"}, "phone": {"Read:mesh"}}})
	for _, id := range []string{"na", "nb"} {
		k := a
		if id == "nb" {
			k = b
		}
		if w, _ := request(t, s, id, k); w.Code != 200 {
			t.Fatalf("%s: status %d %s", id, w.Code, w.Body)
		}
	}
	want := map[string]string{"node-na": "List:mesh Read:mesh Write:logs Write:mesh", "node-nb": "Read:mesh"}
	if got := identityActions(t, dir); !mapsEqual(got, want) {
		t.Errorf("identities = %v, want %v", got, want)
	}
	if got := s.AllBuckets(); !slices.Equal(got, []string{"logs", "mesh"}) {
		t.Errorf("AllBuckets = %v, want [logs mesh]", got)
	}
	w, _ := request(t, s, "na", a)
	var sc api.StorageCredentials
	json.Unmarshal(w.Body.Bytes(), &sc)
	if !slices.Equal(sc.Buckets, []string{"logs", "mesh"}) {
		t.Errorf("web1's credentials name buckets %v, want [logs mesh]", sc.Buckets)
	}

	// A policy change: phone loses mesh. Rewritten and reloaded at once.
	before := reloads
	apply(2, &api.StorageGrants{Nodes: map[string][]string{"web1": {"Write:logs"}}})
	if reloads != before+1 {
		t.Errorf("reloads = %d after a grant change, want %d", reloads, before+1)
	}
	want = map[string]string{"node-na": "Write:logs", "node-nb": ""}
	if got := identityActions(t, dir); !mapsEqual(got, want) {
		t.Errorf("identities after the change = %v, want %v", got, want)
	}
	// The same grants again: nothing rewritten.
	before = reloads
	apply(3, &api.StorageGrants{Nodes: map[string][]string{"web1": {"Write:logs"}}})
	if reloads != before {
		t.Errorf("unchanged grants reloaded SeaweedFS")
	}
	// The grants follow a node's current name in the netmap.
	renamed := netmap(4, &api.StorageGrants{Nodes: map[string][]string{"web1": {"Write:logs"}, "web2": {"Read:logs"}}})
	renamed.Peers[0].Name = "web2"
	if err := s.ApplyNetmap(renamed); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"node-na": "Read:logs", "node-nb": ""}
	if got := identityActions(t, dir); !mapsEqual(got, want) {
		t.Errorf("identities after na became web2 = %v, want %v", got, want)
	}
	// Granting nothing is not the default.
	apply(4, &api.StorageGrants{})
	want = map[string]string{"node-na": "", "node-nb": ""}
	if got := identityActions(t, dir); !mapsEqual(got, want) {
		t.Errorf("identities when the policy grants nothing = %v, want %v", got, want)
	}
	// No grants in the netmap (no policy): the configured buckets for all.
	apply(5, nil)
	want = map[string]string{"node-na": "Read:mesh Write:mesh List:mesh", "node-nb": "Read:mesh Write:mesh List:mesh"}
	if got := identityActions(t, dir); !mapsEqual(got, want) {
		t.Errorf("identities without grants = %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
