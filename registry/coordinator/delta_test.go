package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// answerLog records, for a node client, which netmap answers were deltas.
type answerLog struct {
	next http.RoundTripper

	mu             sync.Mutex
	deltas, wholes int
}

func (l *answerLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err != nil || r.URL.Path != api.PathNetmap || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var d api.NetmapDelta
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, err
	}
	l.mu.Lock()
	if d.DeltaFrom != 0 {
		l.deltas++
	} else {
		l.wholes++
	}
	l.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func (l *answerLog) counts() (deltas, wholes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deltas, l.wholes
}

// wholeNetmap fetches n's whole netmap with a fresh client (no copy to
// apply a delta to).
func wholeNetmap(t *testing.T, tc *testCoord, n *testNode) *api.Netmap {
	t.Helper()
	hc := regclient.NewHTTPClient(tc.Pin())
	defer hc.CloseIdleConnections()
	fresh := &regclient.Client{BaseURL: tc.URL(), HTTP: hc, Credential: n.client.Credential, Key: n.key}
	nm, err := fresh.Netmap(context.Background(), 0, 0)
	if err != nil {
		t.Fatalf("whole netmap: %v", err)
	}
	return nm
}

// A node client watching a real registry gets deltas (joins, endpoint
// updates, a policy apply, a removal, a leave) and hands out, each time,
// the same netmap a client fetching it whole gets.
func TestRegclientAppliesDeltas(t *testing.T) {
	tc := startDefault(t)
	checkDeltas(t, tc, tc)
}

// Two replicas: a node watching on B gets, as deltas, the changes made
// through A (B's history is built from what it reloads on A's
// notifications), and they add up to B's whole netmap.
func TestHADeltasAcrossReplicas(t *testing.T) {
	a, b := startReplicas(t)
	checkDeltas(t, b, a)
}

// checkDeltas makes changes through tc and checks that a node watching on
// on gets each as deltas adding up to its whole netmap there.
func checkDeltas(t *testing.T, on, tc *testCoord) {
	ctx := context.Background()
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true, Tags: []string{"web"}})
	watcher := on.join(t, tok, "watcher")
	log := &answerLog{next: watcher.client.HTTP.Transport}
	watcher.client.HTTP = &http.Client{Transport: log}
	others := []*testNode{tc.join(t, tok, "bravo"), tc.join(t, tok, "charlie")}

	held, err := watcher.client.Netmap(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	changes := []struct {
		name string
		do   func()
	}{
		{"join", func() { others = append(others, tc.join(t, tok, "delta")) }},
		{"endpoints", func() {
			if err := others[0].client.ReportEndpoints(ctx, api.EndpointsRequest{Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.9:4000")}}); err != nil {
				t.Fatal(err)
			}
		}},
		{"policy", func() {
			doc := "tags: [web, db]\nrules:\n  - {name: web-db, from: tag:web, to: tag:db, proto: tcp, ports: [5432]}\n"
			if _, err := tc.admin.PutPolicy(ctx, policy.PutRequest{Policy: doc}); err != nil {
				t.Fatal(err)
			}
		}},
		{"join db", func() {
			others = append(others, tc.join(t, tc.token(t, api.CreateTokenRequest{Tags: []string{"db"}}), "db1"))
		}},
		{"remove", func() {
			if err := tc.admin.RemoveNode(ctx, "charlie"); err != nil {
				t.Fatal(err)
			}
		}},
		{"leave", func() {
			if err := others[2].client.Leave(ctx); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range changes {
		t0 := time.Now()
		c.do()
		// Wait for the change (and whatever else the registry changed
		// meanwhile, such as a node coming online) to reach the watcher's
		// registry and settle, then compare with the whole netmap at the
		// same version.
		for deadline := time.Now().Add(10 * time.Second); on.NetmapVersion() < tc.NetmapVersion(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the watcher's registry is at version %d, the changed one at %d", c.name, on.NetmapVersion(), tc.NetmapVersion())
			}
			time.Sleep(10 * time.Millisecond)
		}
		for {
			nm, err := watcher.client.Netmap(ctx, held.Version, 300*time.Millisecond)
			if errors.Is(err, regclient.ErrNotModified) {
				break
			}
			if err != nil {
				t.Fatalf("%s: netmap: %v", c.name, err)
			}
			held = nm
		}
		t.Logf("%s: reached the watcher in %v", c.name, time.Since(t0))
		want := wholeNetmap(t, on, watcher)
		if want.Version != held.Version {
			t.Fatalf("%s: whole netmap at version %d, watcher holds %d", c.name, want.Version, held.Version)
		}
		if !reflect.DeepEqual(held, want) {
			gj, _ := json.Marshal(held)
			wj, _ := json.Marshal(want)
			t.Fatalf("%s: netmap from deltas differs from the whole one:\n got %s\nwant %s", c.name, gj, wj)
		}
	}
	if names := strings.Join(peerNameList(held), ","); names != "bravo,db1" {
		t.Fatalf("peers at the end = %s, want bravo,db1", names)
	}
	if held.Filter == nil || held.Filter.PolicyVersion == 0 {
		t.Fatalf("filter at the end = %+v, want the applied policy's", held.Filter)
	}
	if deltas, wholes := log.counts(); deltas < len(changes) || wholes != 1 {
		t.Fatalf("watcher got %d deltas and %d whole netmaps, want at least %d deltas and only the first whole", deltas, wholes, len(changes))
	}
}

func peerNameList(nm *api.Netmap) []string {
	var out []string
	for _, p := range nm.Peers {
		out = append(out, p.Name)
	}
	return out
}

// A client holding a netmap from a registry process that has since
// restarted gets a whole netmap (the new process has no history of its
// versions), and the netmaps after that one as deltas again.
func TestRegclientDeltaAfterRestart(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	tc := start(t, cfg, coordinator.Options{})
	tok := tc.token(t, api.CreateTokenRequest{Reusable: true})
	watcher := tc.join(t, tok, "watcher")
	log := &answerLog{next: watcher.client.HTTP.Transport}
	watcher.client.HTTP = &http.Client{Transport: log}
	tc.join(t, tok, "bravo")
	held, err := watcher.client.Netmap(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	tc.stop()

	tc2 := start(t, cfg, coordinator.Options{})
	watcher.client.BaseURL = tc2.URL()
	for i, name := range []string{"charlie", "delta"} {
		tc2.join(t, tok, name)
		nm, err := watcher.client.Netmap(ctx, held.Version, 5*time.Second)
		if err != nil {
			t.Fatalf("netmap after %s joined: %v", name, err)
		}
		held = nm
		deltas, wholes := log.counts()
		// The first whole netmap came before the restart.
		if deltas != i || wholes != 2 {
			t.Fatalf("after %s joined: %d deltas and %d whole netmaps, want %d and 2", name, deltas, wholes, i)
		}
		if want := wholeNetmap(t, tc2, watcher); want.Version == held.Version && !reflect.DeepEqual(held, want) {
			t.Fatalf("after %s joined: netmap %+v, whole %+v", name, held, want)
		}
	}
	if names := strings.Join(peerNameList(held), ","); names != "bravo,charlie,delta" {
		t.Fatalf("peers = %s, want bravo,charlie,delta", names)
	}
}
