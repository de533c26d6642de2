package policystore

import (
	"errors"
	"testing"
)

// Two stores on one backend (registry replicas on one database): both
// bootstrap the same first version without failing, a version stored by
// one becomes current in the other on Reload (and its filters compile
// for the nodes it knows), and a Put with a stale ifVersion conflicts.
func TestSharedBackend(t *testing.T) {
	be := dirBackend{t.TempDir()}
	a, err := OpenBackend(be, []byte(polV1), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A second replica opening with the same bootstrap after the first
	// stored it: it loads version 1.
	b, err := OpenBackend(be, []byte(polV1), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cur, ok := b.Current(); !ok || cur.Version != 1 {
		t.Fatalf("second replica's current = %d, %v; want stored version 1", cur.Version, ok)
	}
	b.SetNodes(nodes())
	if _, err := a.Put([]byte(polV2), 1, t0); err != nil {
		t.Fatal(err)
	}
	if cur, _ := b.Current(); cur.Version != 1 {
		t.Fatalf("before Reload: b current %d, want 1", cur.Version)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	web := nodes()[0]
	if cur, _ := b.Current(); cur.Version != 2 || b.Filter(&web).PolicyVersion != 2 {
		t.Fatalf("after Reload: b current %d, filter version %d; want 2", cur.Version, b.Filter(&web).PolicyVersion)
	}
	if _, err := b.Put([]byte(polV1), 1, t0); !errors.Is(err, ErrConflict) {
		t.Fatalf("Put if version 1 when 2 is stored = %v, want ErrConflict", err)
	}
	// A Put without a condition on a replica that has not reloaded yet
	// builds on the newest stored version.
	if _, err := a.Put([]byte(polV1), 0, t0); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Put([]byte(polV2+"# again\n"), 0, t0)
	if err != nil || resp.Version != 4 {
		t.Fatalf("Put on a stale replica = %+v, %v; want version 4", resp, err)
	}
	// Racing creates of one version: the second fails with ErrConflict.
	v, _ := a.Get(4)
	if err := be.Create(v); !errors.Is(err, ErrConflict) {
		t.Fatalf("Create of a stored version = %v, want ErrConflict", err)
	}
}
