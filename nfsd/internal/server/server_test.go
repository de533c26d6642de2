package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

func readAll(t *testing.T, v *nfsc.Target, p string) []byte {
	t.Helper()
	f, err := v.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

func writeFile(t *testing.T, v *nfsc.Target, p string, data []byte) {
	t.Helper()
	f, err := v.OpenFile(p, 0o644)
	if err != nil {
		t.Fatalf("open %s for writing: %v", p, err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", p, err)
	}
}

func TestFileOperations(t *testing.T) {
	f := newFixture(t)
	v := mustMount(t, f.listen(ipBuild1), "shared")
	disk := func(p string) string {
		b, err := os.ReadFile(filepath.Join(f.shared, p))
		if err != nil {
			t.Fatalf("on disk %s: %v", p, err)
		}
		return string(b)
	}

	// create, write, read
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640 KB: many WRITEs
	writeFile(t, v, "a.bin", data)
	if got := readAll(t, v, "a.bin"); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want the %d written", len(got), len(data))
	}
	if disk("a.bin") != string(data) {
		t.Fatal("file on disk differs from what was written")
	}
	// append
	af, err := v.OpenFile("a.bin", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := af.Seek(int64(len(data)), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := af.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	af.Close()
	if got := readAll(t, v, "a.bin"); !bytes.Equal(got, append(slices.Clone(data), "tail"...)) {
		t.Fatalf("after append: %d bytes ending %q", len(got), got[max(0, len(got)-8):])
	}
	// truncate
	_, afh, err := v.Lookup("a.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.SetAttr(afh, nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: 10}}); err != nil {
		t.Fatalf("truncate: %v", err)
	}
	if got := disk("a.bin"); got != "0123456789" {
		t.Fatalf("after truncate to 10: %q", got)
	}
	// chmod
	if _, err := v.SetAttr(afh, nfsc.Sattr3{Mode: nfsc.SetMode{SetIt: true, Mode: 0o600}}); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if st, err := os.Stat(filepath.Join(f.shared, "a.bin")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("after chmod 600: %v, %v", st.Mode(), err)
	}
	// rename
	if err := v.Rename("a.bin", "b.bin"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.shared, "a.bin")); !os.IsNotExist(err) {
		t.Fatalf("a.bin after rename: %v", err)
	}
	if disk("b.bin") != "0123456789" {
		t.Fatal("b.bin after rename has other contents")
	}
	// mkdir, a file inside, rmdir refused while not empty, then remove + rmdir
	if _, err := v.Mkdir("d", 0o755); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	writeFile(t, v, "d/in", []byte("x"))
	if err := v.RmDir("d"); err == nil {
		t.Fatal("rmdir of a non-empty directory succeeded")
	}
	if err := v.Remove("d/in"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := v.RmDir("d"); err != nil {
		t.Fatalf("rmdir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.shared, "d")); !os.IsNotExist(err) {
		t.Fatalf("d after rmdir: %v", err)
	}
	if err := v.Remove("b.bin"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	// Ownership is squashed (as root): a client's root made these files.
	if os.Geteuid() == 0 {
		writeFile(t, v, "owned", []byte("x"))
		st, _ := os.Stat(filepath.Join(f.shared, "owned"))
		if s := st.Sys().(*syscall.Stat_t); s.Uid != 1234 || s.Gid != 1234 {
			t.Fatalf("file made by client root owned by %d:%d, want 1234:1234", s.Uid, s.Gid)
		}
	}
}

func TestReadDirMany(t *testing.T) {
	f := newFixture(t)
	const n = 10000
	if err := os.Mkdir(filepath.Join(f.shared, "many"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(f.shared, "many", fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v := mustMount(t, f.listen(ipBuild1), "shared")
	ents, err := v.ReadDirPlus("many")
	if err != nil {
		t.Fatalf("readdir: %v", err)
	}
	seen := map[string]bool{}
	for _, e := range ents {
		if e.FileName != "." && e.FileName != ".." {
			seen[e.FileName] = true
		}
	}
	if len(seen) != n || !seen["f00000"] || !seen[fmt.Sprintf("f%05d", n-1)] {
		t.Fatalf("readdir listed %d distinct entries, want %d", len(seen), n)
	}
}

func TestReadOnlyGrantRefusesWrites(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.shared, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, export, addr string }{
		{"read-only grant", "shared", f.listen(ipViewer)},
		{"read-only export", "backups", f.listen(ipBuild1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := mustMount(t, tc.addr, tc.export)
			name := "f"
			if tc.export == "backups" {
				name = "db.dump"
			}
			before := readAll(t, v, name)
			if _, err := v.Create("new", 0o644); err == nil {
				t.Error("create succeeded")
			}
			if _, err := v.Mkdir("dir", 0o755); err == nil {
				t.Error("mkdir succeeded")
			}
			if err := v.Remove(name); err == nil {
				t.Error("remove succeeded")
			}
			if err := v.Rename(name, "moved"); err == nil {
				t.Error("rename succeeded")
			}
			if err := v.Setattr(name, nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: 0}}); err == nil {
				t.Error("truncate succeeded")
			}
			if w, err := v.OpenFile(name, 0o644); err == nil {
				if _, err := w.Write([]byte("overwrite")); err == nil {
					t.Error("write succeeded")
				}
			}
			if got := readAll(t, v, name); !bytes.Equal(got, before) {
				t.Errorf("contents changed to %q", got)
			}
		})
	}
	for _, p := range []string{"new", "dir", "moved"} {
		if _, err := os.Stat(filepath.Join(f.shared, p)); err == nil {
			t.Errorf("%s exists after refused writes", p)
		}
	}
}

func TestNoGrantRefused(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.shared, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	phone := f.listen(ipPhone)
	if _, err := mount(t, phone, "shared"); err == nil || !strings.Contains(err.Error(), "ACCES") {
		t.Fatalf("phone mount shared = %v, want MNT3ERR_ACCES", err)
	}
	if _, err := mount(t, f.listen(ipViewer), "backups"); err == nil {
		t.Fatal("viewer mounted backups")
	}
	if _, err := mount(t, phone, "nosuch"); err == nil || !strings.Contains(err.Error(), "NOENT") {
		t.Fatalf("mount nosuch = %v, want MNT3ERR_NOENT", err)
	}
	// A handle obtained by a node with a grant is worth nothing to phone.
	v := mustMount(t, f.listen(ipBuild1), "shared")
	_, fh, err := v.Lookup("f")
	if err != nil {
		t.Fatal(err)
	}
	c := dialClient(t, phone)
	stolen, err := nfsc.NewTargetWithClient(c, rpc.AuthNull, fh, "/shared", 0)
	if err == nil {
		if _, err := stolen.GetAttr(fh); err == nil {
			t.Fatal("phone used build1's file handle")
		}
		if _, err := stolen.Open("."); err == nil {
			t.Fatal("phone read through build1's file handle")
		}
	}
}

func TestSourcesOutsideTheMeshRefused(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		from string
	}{
		{"outside the prefix", "192.0.2.7"},
		{"loopback", "127.0.0.1"},
		{"in the prefix, not a node", "100.64.0.99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, f.listen(mustAddr(tc.from)))
			if _, err := r.call(100005, 3, 0, nil); err == nil {
				t.Fatal("MOUNT NULL answered")
			}
		})
	}
	// A node of the mesh is served on the same path.
	r := dialRaw(t, f.listen(ipPhone))
	if _, err := r.call(100005, 3, 0, nil); err != nil {
		t.Fatalf("phone's MOUNT NULL = %v", err)
	}
}

func TestRemovedNodeLosesOpenMount(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.shared, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := f.listen(ipBuild1)
	v := mustMount(t, addr, "shared")
	_, fh, err := v.Lookup("f")
	if err != nil {
		t.Fatal(err)
	}
	// An open raw connection too, to see it closed by the server.
	r := dialRaw(t, addr)
	if _, err := r.call(100005, 3, 0, nil); err != nil {
		t.Fatal(err)
	}

	f.ids.Apply(testNetmap(2, "build1"))

	// The server closed the open connection.
	if _, err := r.call(100005, 3, 0, nil); err == nil {
		t.Fatal("removed node's open connection still answered")
	}
	// Every request checks: a handler for build1's address refuses the handle
	// even on a connection that was not closed.
	h := &handler{s: f.srv, addr: ipBuild1}
	if _, _, err := h.FromHandle(fh); err == nil {
		t.Fatal("FromHandle served a removed node")
	}
	// New connections are refused.
	if _, err := dialRaw(t, addr).call(100005, 3, 0, nil); err == nil {
		t.Fatal("removed node's new connection answered")
	}
	// Back in the mesh: served again.
	f.ids.Apply(testNetmap(3))
	if _, _, err := h.FromHandle(fh); err != nil {
		t.Fatalf("FromHandle after the node is back = %v", err)
	}
}

func TestExportList(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		from string
		want []string
	}{
		{"build1", "100.64.0.2", []string{"/shared", "/backups"}},
		{"viewer", "100.64.0.4", []string{"/shared"}},
		{"phone", "100.64.0.3", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dialRaw(t, f.listen(mustAddr(tc.from))).exportList()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("EXPORT for %s = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

func TestExportsReplyWire(t *testing.T) {
	got := exportsReply([]string{"/ab", "/shared"})
	want := []byte{
		0, 0, 0, 1, 0, 0, 0, 3, '/', 'a', 'b', 0, 0, 0, 0, 0,
		0, 0, 0, 1, 0, 0, 0, 7, '/', 's', 'h', 'a', 'r', 'e', 'd', 0, 0, 0, 0, 0,
		0, 0, 0, 0,
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("exportsReply = %x, want %x", got, want)
	}
	if got := exportsReply(nil); !bytes.Equal(got, []byte{0, 0, 0, 0}) {
		t.Fatalf("exportsReply(nil) = %x", got)
	}
}

func TestEscapesOverNFS(t *testing.T) {
	f := newFixture(t)
	for link, target := range map[string]string{"up": "..", "abs": "/", "rel": "../secret"} {
		if err := os.Symlink(target, filepath.Join(f.shared, link)); err != nil {
			t.Fatal(err)
		}
	}
	v := mustMount(t, f.listen(ipBuild1), "shared")
	for _, p := range []string{"up/secret", "rel", "abs/etc/passwd", "../secret", "../../secret"} {
		if fl, err := v.Open(p); err == nil {
			b, _ := io.ReadAll(fl)
			fl.Close()
			if len(b) > 0 {
				t.Errorf("read %q through the export: %q", p, b)
			}
		}
	}
	// A client-made symlink is text, never followed out.
	if err := v.Symlink("/etc", "evil"); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	if _, err := v.Open("evil/passwd"); err == nil {
		t.Error("opened evil/passwd")
	}
	if _, err := v.Create("up/planted", 0o644); err == nil {
		t.Error("created a file through an escaping link")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(f.shared), "planted")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was planted beside the export: %v", err)
	}
}

func TestHandlesSurviveRestart(t *testing.T) {
	f := newFixture(t)
	if err := os.MkdirAll(filepath.Join(f.shared, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.shared, "d", "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	v := mustMount(t, f.listen(ipBuild1), "shared")
	_, fh, err := v.Lookup("d/f")
	if err != nil {
		t.Fatal(err)
	}
	root := rootHandle(t, f.listen(ipBuild1), "shared")

	f.stop()
	f.start()

	c := dialClient(t, f.listen(ipBuild1))
	again, err := nfsc.NewTargetWithClient(c, rpc.AuthNull, root, "/shared", 0)
	if err != nil {
		t.Fatalf("old root handle after restart: %v", err)
	}
	if _, err := again.GetAttr(fh); err != nil {
		t.Fatalf("old file handle after restart: %v", err)
	}
	if got := readAll(t, again, "d/f"); string(got) != "kept" {
		t.Fatalf("read through the old root handle = %q", got)
	}
}

// rootHandle mounts export by hand and returns the root file handle.
func rootHandle(t *testing.T, addr, export string) []byte {
	t.Helper()
	arg := []byte{0, 0, 0, byte(len(export) + 1), '/'}
	arg = append(arg, export...)
	for len(arg)%4 != 0 {
		arg = append(arg, 0)
	}
	res, err := dialRaw(t, addr).call(100005, 3, 1, arg)
	if err != nil || len(res) < 8 || res[3] != 0 {
		t.Fatalf("MNT %s = %x, %v", export, res, err)
	}
	n := int(res[7])
	return slices.Clone(res[8 : 8+n])
}
