package handle

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/rootfs"
)

func open(t *testing.T, dir string) *rootfs.FS {
	t.Helper()
	f, err := rootfs.Open(dir, rootfs.Owner{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestWireFormat(t *testing.T) {
	id := IDOf("shared")
	h := Make(id, 0x0102030405060708, 0x1112131415161718)
	want := append([]byte{1, 0, 0, 0}, id[:]...)
	want = append(want, 1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18)
	if !bytes.Equal(h, want) {
		t.Fatalf("Make = %x, want %x", h, want)
	}
	gid, dev, ino, err := Parse(h)
	if err != nil || gid != id || dev != 0x0102030405060708 || ino != 0x1112131415161718 {
		t.Fatalf("Parse(Make) = %x %x %x %v", gid, dev, ino, err)
	}
	for _, bad := range [][]byte{nil, h[:27], append(h[:28:28], 0), append([]byte{2}, h[1:]...), append([]byte{1, 0, 1}, h[3:]...)} {
		if _, _, _, err := Parse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%x) = %v, want ErrMalformed", bad, err)
		}
	}
}

// TestSurvivesRestart: a handle made by one Index resolves in a fresh one
// (a restarted nfsd), for the root, a nested file and a renamed directory.
func TestSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := NewIndex("shared", open(t, dir))
	hf, hr := before.Handle("a/b/f"), before.Handle("")
	if hf == nil || hr == nil {
		t.Fatal("Handle returned nil")
	}

	after := NewIndex("shared", open(t, dir))
	if p, err := after.Resolve(hf); err != nil || p != "a/b/f" {
		t.Fatalf("Resolve(file handle) after restart = %q, %v; want a/b/f", p, err)
	}
	if p, err := after.Resolve(hr); err != nil || p != "." {
		t.Fatalf("Resolve(root handle) after restart = %q, %v; want .", p, err)
	}
	// Renamed outside NFS: the stale path is noticed, and a walk finds it.
	if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "c")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(MinWalkInterval)
	if p, err := after.Resolve(hf); err != nil || p != "c/b/f" {
		t.Fatalf("Resolve after an outside rename = %q, %v; want c/b/f", p, err)
	}
	// Renamed through the FS: no walk needed.
	if err := open(t, dir).Rename("c", "d"); err != nil { // another FS: not hooked
		t.Fatal(err)
	}
	fs := open(t, dir)
	x := NewIndex("shared", fs)
	hf = x.Handle("d/b/f")
	if err := fs.Rename("d", "e"); err != nil {
		t.Fatal(err)
	}
	x.lastWalk = time.Now() // a walk would be refused
	if p, err := x.Resolve(hf); err != nil || p != "e/b/f" {
		t.Fatalf("Resolve after an NFS rename = %q, %v; want e/b/f", p, err)
	}
}

func TestStaleAndForeign(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	x := NewIndex("shared", open(t, dir))
	h := x.Handle("f")
	other := NewIndex("other", open(t, dir))
	if _, err := other.Resolve(h); !errors.Is(err, ErrStale) {
		t.Fatalf("another export's Resolve = %v, want ErrStale", err)
	}
	if err := os.Remove(filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	if p, err := x.Resolve(h); !errors.Is(err, ErrStale) {
		t.Fatalf("Resolve(removed file) = %q, %v; want ErrStale", p, err)
	}
	// Random handles do not make the server walk again and again.
	x.lastWalk = time.Now()
	if _, err := x.Resolve(Make(x.ID(), 1, 2)); !errors.Is(err, ErrStale) {
		t.Fatalf("Resolve(unknown) = %v, want ErrStale", err)
	}
}
