package replaylog

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeReplays is a store.Replays in memory that can be made to fail.
type fakeReplays struct {
	mu     sync.Mutex
	seen   map[[32]byte]time.Time
	fail   bool
	pruned time.Time
}

func (f *fakeReplays) AddReplay(_ context.Context, h [32]byte, at time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return false, errors.New("database down")
	}
	if _, ok := f.seen[h]; ok {
		return false, nil
	}
	f.seen[h] = at
	return true, nil
}

func (f *fakeReplays) PruneReplays(_ context.Context, before time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return errors.New("database down")
	}
	f.pruned = before
	for h, t := range f.seen {
		if t.Before(before) {
			delete(f.seen, h)
		}
	}
	return nil
}

// Two replicas on one store refuse each other's signatures; while the
// store is down each still refuses the ones it saw itself and accepts new
// ones; old records are pruned.
func TestShared(t *testing.T) {
	st := &fakeReplays{seen: map[[32]byte]time.Time{}}
	a, b := NewShared(st, nil), NewShared(st, nil)
	now := time.Now()
	if !a.Add([]byte("s1"), now) {
		t.Fatal("a fresh signature was refused")
	}
	if a.Add([]byte("s1"), now) || b.Add([]byte("s1"), now) {
		t.Fatal("a signature accepted once was accepted again")
	}
	if st.pruned != now.Add(-Window) {
		t.Fatalf("first Add pruned before %v, want %v", st.pruned, now.Add(-Window))
	}
	st.fail = true
	if !b.Add([]byte("s2"), now) {
		t.Fatal("a fresh signature was refused while the store is down")
	}
	if b.Add([]byte("s2"), now) {
		t.Fatal("a signature this replica accepted was accepted again while the store is down")
	}
	st.fail = false
	later := now.Add(Window + time.Second)
	if !a.Add([]byte("s3"), later) || st.pruned != later.Add(-Window) {
		t.Fatalf("Add after Window/2 pruned before %v, want %v", st.pruned, later.Add(-Window))
	}
}
