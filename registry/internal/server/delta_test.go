package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// viewPolicy hides peers in one of three ways, switched at run time; its
// filters depend on the way and on the node's tags.
type viewPolicy struct{ mode atomic.Uint64 }

func (p *viewPolicy) ViewVersion() uint64 { return p.mode.Load() }

func (p *viewPolicy) Visible(self, peer *api.Node) bool {
	switch p.mode.Load() % 3 {
	case 0: // a shared tag
		return testPolicy{}.Visible(self, peer)
	case 1: // everyone
		return true
	default: // the same first letter, or a "pub" peer
		return self.Name[0] == peer.Name[0] || slices.Contains(peer.Tags, "pub")
	}
}

func (p *viewPolicy) Filter(self *api.Node) *api.Filter {
	return &api.Filter{PolicyVersion: p.mode.Load(), Rules: []api.FilterRule{{Name: fmt.Sprintf("m%d-%s", p.mode.Load()%3, strings.Join(self.Tags, "+")),
		Protocol: "any", Sources: []netip.Prefix{netip.PrefixFrom(self.IP, 32)}}}}
}

// joinKey joins (or re-joins, renaming it or changing its tags) the node
// with key k.
func joinKey(t *testing.T, s *Server, st store.Store, k nodekey.PrivateKey, name string, tags []string, now time.Time) store.Node {
	t.Helper()
	ctx := context.Background()
	tok, _ := jointoken.New("pin")
	h := tok.SecretHash()
	if err := st.CreateToken(ctx, store.Token{ID: tok.ID, SecretHash: h[:], Tags: tags, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	res, err := st.Join(ctx, store.JoinParams{TokenID: tok.ID, TokenSecretHash: h, Name: name, PublicKey: k.Public(),
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:7")}, NewNodeID: "id-" + name, CredentialHash: []byte("h"), Now: now})
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	if err := s.refresh(ctx, res.Version); err != nil {
		t.Fatal(err)
	}
	return res.Node
}

// observer is a node's copy of its netmap, as a client holds it.
type observer struct {
	held *api.Netmap
}

// TestDeltaProperty makes random sequences of changes (joins, removals,
// endpoint updates, online and offline, policy changes, renames, tag
// changes) and checks, for every node and for base versions one or several
// steps back, that applying the delta the server makes to the node's
// previous netmap gives exactly its whole netmap at the new version: no
// peer its policy hides, none it can no longer see, the right filter.
func TestDeltaProperty(t *testing.T) {
	policies := []struct {
		name string
		pol  func() Policy
	}{
		{"none", func() Policy { return nil }},
		{"tags", func() Policy { return testPolicy{} }},
		{"switching", func() Policy { return &viewPolicy{} }},
	}
	for _, pc := range policies {
		for seed := uint64(1); seed <= 4; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", pc.name, seed), func(t *testing.T) {
				runDeltaProperty(t, pc.pol(), seed, 120)
			})
		}
	}
}

func runDeltaProperty(t *testing.T, pol Policy, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 19))
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, st := newTestServer(t, clock, pol)
	tagSets := [][]string{nil, {"a"}, {"b"}, {"a", "b"}, {"pub"}, {"a", "pub"}}
	letters := "abc"
	keys := map[string]nodekey.PrivateKey{} // node ID -> key
	names := map[string]string{}            // node ID -> name
	serial := 0
	newName := func() string {
		serial++
		return fmt.Sprintf("%c%03d", letters[rng.IntN(len(letters))], serial)
	}
	join := func() {
		k, _ := nodekey.Generate()
		name := newName()
		n := joinKey(t, s, st, k, name, tagSets[rng.IntN(len(tagSets))], clock.Now())
		keys[n.ID], names[n.ID] = k, name
	}
	for range 6 {
		join()
	}
	obs := map[string]*observer{}     // node ID -> its netmaps
	older := map[string]*api.Netmap{} // node ID -> a netmap some steps old
	deltas, fulls := 0, 0
	check := func(step int, op string) {
		snap := s.hub.current()
		for _, self := range snap.order {
			id := self.node.ID
			var want api.Netmap
			if err := json.Unmarshal(s.render(snap, self), &want); err != nil {
				t.Fatal(err)
			}
			o := obs[id]
			if o == nil {
				obs[id] = &observer{held: &want}
				continue
			}
			for _, base := range []*api.Netmap{o.held, older[id]} {
				if base == nil || base.Version == snap.version {
					continue
				}
				parts, n, ok := s.deltaParts(snap, self, base.Version)
				if !ok {
					fulls++
					continue
				}
				deltas++
				doc := bytes.Join(parts, nil)
				if len(doc) != n {
					t.Fatalf("step %d (%s): delta length %d, parts say %d", step, op, len(doc), n)
				}
				var d api.NetmapDelta
				if err := json.Unmarshal(doc, &d); err != nil {
					t.Fatalf("step %d (%s): delta of %s: %v\n%s", step, op, self.node.Name, err, doc)
				}
				// Removed names only peers the node held: a peer it
				// may not see is never named, not even as removed.
				for _, rid := range d.Removed {
					if !slices.ContainsFunc(base.Peers, func(p api.Node) bool { return p.ID == rid }) {
						t.Fatalf("step %d (%s): %s's delta removes %s, which it did not hold", step, op, self.node.Name, rid)
					}
				}
				got, err := api.ApplyDelta(base, &d)
				if err != nil {
					t.Fatalf("step %d (%s): apply delta of %s: %v", step, op, self.node.Name, err)
				}
				if !reflect.DeepEqual(*got, want) {
					gj, _ := json.Marshal(got)
					wj, _ := json.Marshal(want)
					t.Fatalf("step %d (%s): %s's delta from %d to %d applied:\n got %s\nwant %s\ndelta %s", step, op, self.node.Name, base.Version, snap.version, gj, wj, doc)
				}
				// The gzip form is the same document.
				zr, err := gzip.NewReader(bytes.NewReader(bytes.Join(gzipWhole(parts), nil)))
				if err != nil {
					t.Fatal(err)
				}
				if unz, err := io.ReadAll(zr); err != nil || !bytes.Equal(unz, doc) {
					t.Fatalf("step %d: gunzip delta = %v, %s", step, err, unz)
				}
			}
			// Some nodes keep an older netmap for a while (a watcher
			// that misses versions).
			if rng.IntN(4) == 0 {
				older[id] = o.held
			}
			if rng.IntN(5) != 0 {
				o.held = &want
			}
		}
		for id := range obs {
			if snap.byID[id] == nil {
				delete(obs, id)
				delete(older, id)
			}
		}
	}
	check(0, "start")
	for step := 1; step <= steps; step++ {
		snap := s.hub.current()
		ids := make([]string, 0, len(snap.order))
		for _, e := range snap.order {
			ids = append(ids, e.node.ID)
		}
		pick := func() string { return ids[rng.IntN(len(ids))] }
		var op string
		switch r := rng.IntN(10); {
		case r == 0 || len(ids) < 3:
			op = "join"
			join()
		case r == 1 && len(ids) > 3:
			op = "remove"
			_, v, err := st.RemoveNode(ctx, snap.byID[pick()].node.Name, clock.Now().Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.refresh(ctx, v); err != nil {
				t.Fatal(err)
			}
		case r <= 3:
			op = "endpoints"
			ep := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), uint16(1000+step))
			v, err := st.SetEndpoints(ctx, pick(), []netip.AddrPort{ep}, store.SSH{})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.refresh(ctx, v); err != nil {
				t.Fatal(err)
			}
		case r == 4:
			op = "online"
			if err := s.markSeen(ctx, pick(), true); err != nil {
				t.Fatal(err)
			}
		case r == 5:
			op = "offline"
			clock.Add(20 * time.Second)
			if err := s.sweepOnline(ctx); err != nil {
				t.Fatal(err)
			}
		case r == 6:
			op = "policy"
			if vp, ok := s.set.Policy.(*viewPolicy); ok {
				vp.mode.Add(1)
			}
			if err := s.Changed(ctx); err != nil {
				t.Fatal(err)
			}
		case r == 7:
			op = "rename"
			id := pick()
			names[id] = newName()
			joinKey(t, s, st, keys[id], names[id], snap.byID[id].node.Tags, clock.Now())
		default:
			op = "tags"
			id := pick()
			joinKey(t, s, st, keys[id], names[id], tagSets[rng.IntN(len(tagSets))], clock.Now())
		}
		check(step, op)
	}
	// The test is not vacuous: deltas were made (policy changes and
	// changes of a node's own record send it whole netmaps).
	if deltas < steps {
		t.Fatalf("%d deltas and %d whole netmaps over %d steps: deltas are not being made", deltas, fulls, steps)
	}
	t.Logf("%d deltas, %d whole netmaps", deltas, fulls)
}
