package sqlstore

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
)

// fakeLeases is an in-memory leases table; nodes are the keys that are
// nodes.
type fakeLeases struct {
	idx     map[string]int64
	updated map[string]int64
	nodes   map[string]bool
}

func newFakeLeases() *fakeLeases {
	return &fakeLeases{idx: map[string]int64{}, updated: map[string]int64{}, nodes: map[string]bool{}}
}

func (f *fakeLeases) Lease(_ context.Context, key []byte) (int64, bool, error) {
	i, ok := f.idx[string(key)]
	return i, ok, nil
}

func (f *fakeLeases) RefreshLease(_ context.Context, key []byte, now int64) error {
	f.updated[string(key)] = now
	return nil
}

func (f *fakeLeases) DeleteLease(_ context.Context, key []byte) error {
	delete(f.idx, string(key))
	delete(f.updated, string(key))
	return nil
}

func (f *fakeLeases) LowestFree(context.Context) (int64, error) {
	held := map[int64]bool{}
	for _, i := range f.idx {
		held[i] = true
	}
	var next int64
	for held[next] {
		next++
	}
	return next, nil
}

func (f *fakeLeases) OldestOrphan(context.Context) ([]byte, int64, bool, error) {
	var key string
	found := false
	for k := range f.idx {
		if !f.nodes[k] && (!found || f.updated[k] < f.updated[key]) {
			key, found = k, true
		}
	}
	return []byte(key), f.idx[key], found, nil
}

func (f *fakeLeases) InsertLease(_ context.Context, key []byte, idx, now int64) error {
	f.idx[string(key)] = idx
	f.updated[string(key)] = now
	return nil
}

// lease gives key index idx, updated at t, as a node's when node is set.
func (f *fakeLeases) lease(b byte, idx int64, t time.Time, node bool) {
	k := key(b)
	f.idx[string(k[:])] = idx
	f.updated[string(k[:])] = t.UnixNano()
	f.nodes[string(k[:])] = node
}

func TestAllocate(t *testing.T) {
	small := netip.MustParsePrefix("10.1.0.0/30") // 2 hosts
	for _, tc := range []struct {
		name    string
		cidr    netip.Prefix
		leases  func(*fakeLeases)
		want    uint32
		wantErr error
		// gone is a key whose lease the allocation must have taken.
		gone byte
	}{
		{name: "empty range: index 0", cidr: cidr, leases: func(*fakeLeases) {}, want: 0},
		{name: "lowest gap", cidr: cidr, leases: func(f *fakeLeases) {
			f.lease(2, 0, now, true)
			f.lease(3, 2, now, true)
		}, want: 1},
		{name: "own lease kept", cidr: cidr, leases: func(f *fakeLeases) {
			f.lease(1, 5, now, false)
		}, want: 5},
		{name: "own lease past a shrunk range dropped", cidr: small, leases: func(f *fakeLeases) {
			f.lease(1, 9, now, false)
		}, want: 0},
		{name: "full range: oldest orphan reclaimed", cidr: small, leases: func(f *fakeLeases) {
			f.lease(2, 0, now.Add(-time.Hour), true) // oldest, but a node
			f.lease(3, 1, now.Add(-time.Minute), false)
		}, want: 1, gone: 3},
		{name: "full range of nodes", cidr: small, leases: func(f *fakeLeases) {
			f.lease(2, 0, now, true)
			f.lease(3, 1, now, true)
		}, wantErr: store.ErrRangeFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLeases()
			tc.leases(f)
			k := key(1)
			later := now.Add(time.Second)
			got, err := Allocate(context.Background(), f, tc.cidr, k, later)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Allocate = %d, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Allocate = %d, %v; want %d", got, err, tc.want)
			}
			if i, ok := f.idx[string(k[:])]; !ok || i != int64(tc.want) || f.updated[string(k[:])] != later.UnixNano() {
				t.Fatalf("lease after Allocate = %d (%v) updated %d; want %d updated %d", i, ok, f.updated[string(k[:])], tc.want, later.UnixNano())
			}
			if tc.gone != 0 {
				g := key(tc.gone)
				if _, ok := f.idx[string(g[:])]; ok {
					t.Fatalf("the reclaimed key still holds a lease")
				}
			}
		})
	}
}
