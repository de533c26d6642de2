package rootfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func newFS(t *testing.T) (*FS, string, string) {
	t.Helper()
	base := t.TempDir()
	exp := filepath.Join(base, "export")
	if err := os.Mkdir(exp, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(base, "secret")
	if err := os.WriteFile(secret, []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(exp, Owner{UID: 1234, GID: 5678})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, exp, base
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{"": ".", "/": ".", ".": ".", "a/b": "a/b", "/a/../b": "b", "../../x": "x", "a/./b/": "a/b"} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEscapes: neither ".." nor symlinks (absolute, relative, through a
// directory) reach the file beside the export.
func TestEscapes(t *testing.T) {
	f, exp, base := newFS(t)
	if err := os.Symlink(filepath.Join(base, "secret"), filepath.Join(exp, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret", filepath.Join(exp, "rel")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", filepath.Join(exp, "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(exp, "slash")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"abs", "rel", "up/secret", "slash/etc/passwd", "up/export/../secret"} {
		t.Run(name, func(t *testing.T) {
			if fl, err := f.Open(name); err == nil {
				b, _ := io.ReadAll(fl)
				fl.Close()
				t.Fatalf("Open(%q) read %q, want an error", name, b)
			}
			if _, err := f.Stat(name); err == nil {
				t.Fatalf("Stat(%q) succeeded, want an error", name)
			}
			if _, err := f.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0); err == nil {
				t.Fatalf("OpenFile(%q, write) succeeded", name)
			}
		})
	}
	// Creating through an escaping symlinked directory is refused too.
	if _, err := f.Create("up/created"); err == nil {
		t.Fatal("Create(up/created) succeeded")
	}
	if _, err := os.Stat(filepath.Join(base, "created")); err == nil {
		t.Fatal("a file was created outside the export")
	}
	if _, err := f.ReadDir("up"); err == nil {
		t.Fatal("ReadDir(up) succeeded")
	}
	// ".." in a path is resolved lexically first: it cannot climb above the root.
	fl, err := f.Create("../../../dotdot")
	if err != nil {
		t.Fatal(err)
	}
	fl.Close()
	if _, err := os.Stat(filepath.Join(exp, "dotdot")); err != nil {
		t.Fatalf("../../../dotdot was not created inside the export: %v", err)
	}
	// The links themselves are still readable as text.
	if got, err := f.Readlink("rel"); err != nil || got != "../secret" {
		t.Fatalf("Readlink(rel) = %q, %v", got, err)
	}
	if err := f.Rename("dotdot", "up/moved"); err == nil {
		t.Fatal("Rename into an escaping link succeeded")
	}
}

func TestReadOnly(t *testing.T) {
	f, exp, _ := newFS(t)
	if err := os.WriteFile(filepath.Join(exp, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := f.ReadOnly()
	if ro.Capabilities()&(1) != 0 { // billy.WriteCapability
		t.Fatal("read-only view reports the write capability")
	}
	checks := map[string]error{}
	_, checks["create"] = ro.Create("new")
	_, checks["openwrite"] = ro.OpenFile("f", os.O_WRONLY, 0)
	checks["remove"] = ro.Remove("f")
	checks["rename"] = ro.Rename("f", "g")
	checks["mkdir"] = ro.MkdirAll("d", 0o755)
	checks["symlink"] = ro.Symlink("f", "l")
	checks["chmod"] = ro.Chmod("f", 0o600)
	checks["chown"] = ro.Chown("f", 0, 0)
	checks["link"] = ro.Link("f", "h")
	for op, err := range checks {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("read-only %s = %v, want EROFS", op, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(exp, "f"))
	if err != nil || string(b) != "data" {
		t.Fatalf("file after refused writes = %q, %v", b, err)
	}
	fl, err := ro.Open("f")
	if err != nil {
		t.Fatalf("read-only Open = %v", err)
	}
	fl.Close()
}

func TestSquash(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("squashing needs root, and CI runs as root")
		}
		t.Skip("squashing needs root")
	}
	f, exp, _ := newFS(t)
	fl, err := f.Create("f")
	if err != nil {
		t.Fatal(err)
	}
	fl.Close()
	if err := f.MkdirAll("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Chown("d", 0, 0); err != nil { // a client's root asks for root
		t.Fatal(err)
	}
	if err := f.Chmod("f", 0o4755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"f", "d"} {
		st, err := os.Lstat(filepath.Join(exp, n))
		if err != nil {
			t.Fatal(err)
		}
		s := st.Sys().(*syscall.Stat_t)
		if s.Uid != 1234 || s.Gid != 5678 {
			t.Errorf("%s owned by %d:%d, want 1234:5678", n, s.Uid, s.Gid)
		}
		if st.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
			t.Errorf("%s mode %v keeps setuid/setgid", n, st.Mode())
		}
	}
}
