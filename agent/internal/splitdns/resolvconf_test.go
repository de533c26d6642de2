package splitdns

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	cfg1 = Config{Zone: "mesh", Servers: []netip.Addr{srvA}, MeshCIDR: mesh10}
	cfg2 = Config{Zone: "mesh", Servers: []netip.Addr{srvB, srvC, srvD}, MeshCIDR: mesh10}
)

type rcEnv struct {
	dir, rc, state string
}

func newEnv(t *testing.T) rcEnv {
	d := t.TempDir()
	return rcEnv{dir: d, rc: filepath.Join(d, "etc", "resolv.conf"), state: filepath.Join(d, "state")}
}

func (e rcEnv) manager(t *testing.T, mode Mode) *Manager {
	t.Helper()
	fr := &fakeRunner{}
	m, err := New(Options{Mode: mode, Link: "tm0", StateDir: e.state, ResolvConf: e.rc, Runner: fr.run,
		resolvedDir: filepath.Join(e.dir, "no-resolved"), nsswitch: filepath.Join(e.dir, "nsswitch.conf")})
	if err != nil {
		t.Fatal(err)
	}
	if mode != ModeOff && m.Mode() != ModeResolvConf {
		t.Fatalf("Mode() = %q, want resolvconf", m.Mode())
	}
	return m
}

func (e rcEnv) snap(t *testing.T) snapshot {
	t.Helper()
	s, err := readSnapshot(e.rc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e rcEnv) backupExists() bool {
	_, err := os.Lstat(backupPath(e.state))
	return err == nil
}

// sameSnap compares what a test cares about: kind, bytes, mode, owner, target.
func sameSnap(a, b snapshot) bool {
	return a.Kind == b.Kind && bytes.Equal(a.Content, b.Content) && a.Mode == b.Mode && a.Target == b.Target &&
		(a.Kind == kindAbsent || a.UID == b.UID && a.GID == b.GID)
}

// checkApplied checks that the file is a regular file whose nameservers are
// mesh then orig, with mode perm.
func checkApplied(t *testing.T, e rcEnv, mesh []string, orig []string, perm fs.FileMode) {
	t.Helper()
	s := e.snap(t)
	if s.Kind != kindFile {
		t.Fatalf("resolv.conf is a %s, want a file", s.Kind)
	}
	if want := append(slices.Clone(mesh), orig...); !slices.Equal(nameservers(s.Content), want) {
		t.Fatalf("nameservers = %q, want %q\n%s", nameservers(s.Content), want, s.Content)
	}
	if s.Mode != perm {
		t.Errorf("mode = %v, want %v", s.Mode, perm)
	}
	if !e.backupExists() {
		t.Errorf("no backup while applied")
	}
}

// setup creates the original at e.rc: content, or a symlink when link is
// set ("" content and no link: absent).
type original struct {
	name    string
	content string
	perm    fs.FileMode
	link    string // symlink target, relative to etc/
	target  string // content of the link's target; "" leaves it dangling
	absent  bool
	servers []string // the original's nameservers
}

func (o original) create(t *testing.T, e rcEnv) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(e.rc), 0o755))
	switch {
	case o.absent:
	case o.link != "":
		if o.target != "" {
			p := filepath.Join(filepath.Dir(e.rc), o.link)
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.WriteFile(p, []byte(o.target), 0o644))
		}
		must(t, os.Symlink(o.link, e.rc))
	default:
		must(t, os.WriteFile(e.rc, []byte(o.content), 0o600))
		must(t, os.Chmod(e.rc, o.perm))
		if os.Geteuid() == 0 {
			must(t, os.Chown(e.rc, 1234, 5678))
		}
	}
}

var originals = []original{
	{name: "file, no final newline, odd mode", content: "# by dhcp\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch corp.example\noptions ndots:2", perm: 0o640,
		servers: []string{"192.0.2.1", "192.0.2.2"}},
	{name: "file with rotate", content: "nameserver 192.0.2.1\noptions rotate edns0\n", perm: 0o644, servers: []string{"192.0.2.1"}},
	{name: "empty file", content: "", perm: 0o600},
	{name: "crlf and setgid", content: "nameserver 192.0.2.7\r\n\r\n", perm: fs.ModeSetgid | 0o644, servers: []string{"192.0.2.7"}},
	{name: "symlink", link: "../run/resolvconf/resolv.conf", target: "nameserver 192.0.2.9\n", servers: []string{"192.0.2.9"}},
	{name: "dangling symlink", link: "../run/none/resolv.conf"},
	{name: "absent", absent: true},
}

// TestResolvConfRoundTrip applies, re-applies with other servers and closes,
// and checks the original comes back byte for byte, with its mode, owner
// and symlink-ness.
func TestResolvConfRoundTrip(t *testing.T) {
	for _, o := range originals {
		t.Run(o.name, func(t *testing.T) {
			e := newEnv(t)
			o.create(t, e)
			before := e.snap(t)
			var linkTarget []byte
			if o.link != "" && o.target != "" {
				linkTarget, _ = os.ReadFile(e.rc)
			}
			perm := o.perm
			if o.link != "" || o.absent {
				perm = 0o644
			}
			m := e.manager(t, ModeResolvConf)
			if e.backupExists() {
				t.Fatal("backup before Apply")
			}
			must(t, m.Apply(cfg1))
			checkApplied(t, e, []string{"10.0.0.3"}, o.servers, perm)
			if st, _ := os.Stat(backupPath(e.state)); st.Mode().Perm() != 0o600 {
				t.Errorf("backup mode = %v, want 0600", st.Mode().Perm())
			}
			if os.Geteuid() == 0 && o.perm != 0 {
				if s := e.snap(t); s.UID != 1234 || s.GID != 5678 {
					t.Errorf("written file owner = %d:%d, want the original's 1234:5678", s.UID, s.GID)
				}
			}
			first := e.snap(t)
			for line := range strings.Lines(string(first.Content)) {
				if f := strings.Fields(line); len(f) > 0 && f[0] == "options" && slices.Contains(f, "rotate") {
					t.Errorf("rotate kept: %q", line)
				}
			}

			// Same config: nothing written (same inode).
			st1, _ := os.Stat(e.rc)
			must(t, m.Apply(cfg1))
			if st2, _ := os.Stat(e.rc); !os.SameFile(st1, st2) {
				t.Errorf("unchanged Apply rewrote the file")
			}

			// Three mesh servers: with original servers only two fit before them.
			must(t, m.Apply(cfg2))
			want := []string{"10.0.0.4", "10.0.0.5", "10.0.0.6"}
			if len(o.servers) > 0 {
				want = want[:2]
			}
			checkApplied(t, e, want, o.servers, perm)
			must(t, m.Apply(cfg1))
			if s := e.snap(t); !bytes.Equal(s.Content, first.Content) {
				t.Errorf("back to cfg1: content differs from the first Apply")
			}

			must(t, m.Close())
			if after := e.snap(t); !sameSnap(after, before) {
				t.Errorf("after Close:\n got  %+v\n want %+v", after, before)
			}
			if linkTarget != nil {
				if b, _ := os.ReadFile(filepath.Join(filepath.Dir(e.rc), o.link)); !bytes.Equal(b, linkTarget) {
					t.Errorf("symlink target changed: %q", b)
				}
			}
			if e.backupExists() {
				t.Errorf("backup left after Close")
			}
			leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(e.rc), ".*tunnelmesh*"))
			if len(leftovers) > 0 {
				t.Errorf("temporary files left: %q", leftovers)
			}
			if err := m.Apply(cfg1); !errors.Is(err, ErrClosed) {
				t.Errorf("Apply after Close = %v, want ErrClosed", err)
			}
		})
	}
}

// TestResolvConfCrashRecovery abandons a Manager without Close and checks
// that the next New restores the original, whatever its mode.
func TestResolvConfCrashRecovery(t *testing.T) {
	for _, mode := range []Mode{ModeResolvConf, ModeOff, ModeAuto} {
		for _, o := range originals {
			t.Run(string(mode)+"/"+o.name, func(t *testing.T) {
				e := newEnv(t)
				o.create(t, e)
				before := e.snap(t)
				m := e.manager(t, ModeResolvConf)
				must(t, m.Apply(cfg1))
				must(t, m.Apply(cfg2))
				// crash: no Close
				m2 := e.manager(t, mode)
				if after := e.snap(t); !sameSnap(after, before) {
					t.Errorf("after recovery:\n got  %+v\n want %+v", after, before)
				}
				if e.backupExists() {
					t.Errorf("backup left after recovery")
				}
				must(t, m2.Close())
				if after := e.snap(t); !sameSnap(after, before) {
					t.Errorf("Close after recovery changed the file: %+v", after)
				}
			})
		}
	}
}

// TestResolvConfCrashMidRewrite recovers from a crash between saving the
// backup and renaming the new file into place, on both sides of the rename.
func TestResolvConfCrashMidRewrite(t *testing.T) {
	for _, renamed := range []bool{false, true} {
		e := newEnv(t)
		o := originals[0]
		o.create(t, e)
		before := e.snap(t)
		m := e.manager(t, ModeResolvConf)
		must(t, m.Apply(cfg1))
		bk, err := loadBackup(backupPath(e.state))
		must(t, err)
		next := render(bk.Original.Content, cfg2, backupPath(e.state))
		bk.Written = append(bk.Written, hashOf(next))
		must(t, saveBackup(backupPath(e.state), bk))
		if renamed {
			must(t, writeFile(e.rc, next, o.perm, -1, -1))
		} else {
			must(t, os.WriteFile(filepath.Join(filepath.Dir(e.rc), ".resolv.conf.tunnelmesh-123"), next[:10], 0o600))
		}
		e.manager(t, ModeResolvConf)
		if after := e.snap(t); !sameSnap(after, before) {
			t.Errorf("renamed=%v: after recovery:\n got  %+v\n want %+v", renamed, after, before)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(e.rc), ".*")); len(left) > 0 {
			t.Errorf("renamed=%v: temporary files left after recovery: %q", renamed, left)
		}
	}
}

// TestResolvConfSomeoneElse checks that a file rewritten by someone else
// after our Apply is left alone, on Close and on crash recovery.
func TestResolvConfSomeoneElse(t *testing.T) {
	theirs := []struct {
		name  string
		write func(t *testing.T, path string)
	}{
		{"new content", func(t *testing.T, p string) { must(t, os.WriteFile(p, []byte("nameserver 198.51.100.1\n"), 0o644)) }},
		{"symlink", func(t *testing.T, p string) { must(t, os.Remove(p)); must(t, os.Symlink("/run/elsewhere", p)) }},
		{"removed", func(t *testing.T, p string) { must(t, os.Remove(p)) }},
	}
	for _, crash := range []bool{false, true} {
		for _, th := range theirs {
			t.Run(th.name+map[bool]string{false: "/close", true: "/crash"}[crash], func(t *testing.T) {
				e := newEnv(t)
				originals[0].create(t, e)
				m := e.manager(t, ModeResolvConf)
				must(t, m.Apply(cfg1))
				th.write(t, e.rc)
				want := e.snap(t)
				if crash {
					e.manager(t, ModeResolvConf)
				} else {
					must(t, m.Close())
				}
				if got := e.snap(t); !sameSnap(got, want) {
					t.Errorf("their file replaced:\n got  %+v\n want %+v", got, want)
				}
				if e.backupExists() {
					t.Errorf("backup left")
				}
			})
		}
	}
}

// TestResolvConfAdopt: a file rewritten by someone else between two Applies
// becomes the new original; Close restores that one.
func TestResolvConfAdopt(t *testing.T) {
	e := newEnv(t)
	originals[0].create(t, e)
	m := e.manager(t, ModeResolvConf)
	must(t, m.Apply(cfg1))
	must(t, os.WriteFile(e.rc, []byte("nameserver 198.51.100.1\n"), 0o644))
	theirs := e.snap(t)
	must(t, m.Apply(cfg1))
	checkApplied(t, e, []string{"10.0.0.3"}, []string{"198.51.100.1"}, 0o640)
	must(t, m.Close())
	if got := e.snap(t); !sameSnap(got, theirs) {
		t.Errorf("after Close:\n got  %+v\n want %+v", got, theirs)
	}
}

// TestResolvConfDisable: Apply without servers restores the original; a
// later Apply with servers writes again.
func TestResolvConfDisable(t *testing.T) {
	e := newEnv(t)
	originals[0].create(t, e)
	before := e.snap(t)
	m := e.manager(t, ModeResolvConf)
	must(t, m.Apply(cfg1))
	must(t, m.Apply(Config{Zone: "mesh"}))
	if got := e.snap(t); !sameSnap(got, before) || e.backupExists() {
		t.Errorf("after Apply without servers: %+v, backup %v", got, e.backupExists())
	}
	must(t, m.Apply(Config{}))
	must(t, m.Apply(cfg1))
	checkApplied(t, e, []string{"10.0.0.3"}, originals[0].servers, originals[0].perm)
	must(t, m.Close())
	if got := e.snap(t); !sameSnap(got, before) {
		t.Errorf("after Close: %+v", got)
	}
}

func TestResolvConfInvalidConfig(t *testing.T) {
	e := newEnv(t)
	originals[0].create(t, e)
	before := e.snap(t)
	m := e.manager(t, ModeResolvConf)
	if err := m.Apply(Config{Zone: "mesh", Servers: []netip.Addr{netip.IPv4Unspecified()}}); err == nil {
		t.Fatal("Apply(0.0.0.0) = nil, want error")
	}
	if got := e.snap(t); !sameSnap(got, before) || e.backupExists() {
		t.Errorf("invalid Apply changed things: %+v, backup %v", got, e.backupExists())
	}
}

// TestResolvConfWriteFails: a write that fails leaves no backup behind.
func TestResolvConfWriteFails(t *testing.T) {
	e := newEnv(t)
	e.rc = filepath.Join(e.dir, "no-such-dir", "resolv.conf")
	m := e.manager(t, ModeResolvConf)
	err := m.Apply(cfg1)
	if err == nil || !strings.Contains(err.Error(), "splitdns: apply: write "+e.rc) {
		t.Fatalf("Apply = %v, want a write error", err)
	}
	if e.backupExists() {
		t.Errorf("backup left after a failed write")
	}
	must(t, m.Close())
}

func TestResolvConfBadBackup(t *testing.T) {
	for _, tc := range []struct {
		name, data, err string
	}{
		{"not json", "{", "unexpected EOF"},
		{"unknown field", `{"version":1,"path":"/x","original":{"kind":"absent"},"written":["ab"],"extra":1}`, "unknown field"},
		{"version", `{"version":2,"path":"/x","original":{"kind":"absent"},"written":["ab"]}`, "version 2"},
		{"kind", `{"version":1,"path":"/x","original":{"kind":"fifo"},"written":["ab"]}`, `original kind "fifo"`},
		{"no hash", `{"version":1,"path":"/x","original":{"kind":"absent"},"written":[]}`, "no written hash"},
		{"link without target", `{"version":1,"path":"/x","original":{"kind":"symlink"},"written":["ab"]}`, "symlink without target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			originals[0].create(t, e)
			before := e.snap(t)
			must(t, os.MkdirAll(e.state, 0o700))
			must(t, os.WriteFile(backupPath(e.state), []byte(tc.data), 0o600))
			_, err := New(Options{Mode: ModeResolvConf, Link: "tm0", StateDir: e.state, ResolvConf: e.rc})
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "recover resolv.conf") {
				t.Fatalf("New = %v, want error %q", err, tc.err)
			}
			if got := e.snap(t); !sameSnap(got, before) {
				t.Errorf("resolv.conf changed")
			}
		})
	}
}

// TestWriteInPlace checks the in-place write used when rename fails
// with EBUSY, as on a bind-mounted resolv.conf (the root test exercises the
// real mount).
func TestWriteInPlace(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(p, []byte("a longer original\n"), 0o640))
	st1, _ := os.Stat(p)
	must(t, writeInPlace(p, []byte("short\n")))
	st2, _ := os.Stat(p)
	if b, _ := os.ReadFile(p); string(b) != "short\n" || !os.SameFile(st1, st2) || st2.Mode().Perm() != 0o640 {
		t.Errorf("writeInPlace: %q, same file %v, mode %v", b, os.SameFile(st1, st2), st2.Mode())
	}
}

func TestBackupFormat(t *testing.T) {
	e := newEnv(t)
	originals[0].create(t, e)
	m := e.manager(t, ModeResolvConf)
	must(t, m.Apply(cfg1))
	raw, err := os.ReadFile(backupPath(e.state))
	must(t, err)
	var v map[string]any
	must(t, json.Unmarshal(raw, &v))
	orig := v["original"].(map[string]any)
	if v["version"] != 1.0 || v["path"] != e.rc || orig["kind"] != "file" || orig["mode"] != float64(0o640) {
		t.Errorf("backup = %s", raw)
	}
	if w := v["written"].([]any); len(w) != 1 || w[0] != hashOf(e.snap(t).Content) {
		t.Errorf("written = %v, want the hash of the file", w)
	}
	must(t, m.Close())
}

// TestAutoWithoutResolved: auto falls back to resolv.conf.
func TestAutoWithoutResolved(t *testing.T) {
	e := newEnv(t)
	originals[1].create(t, e)
	m := e.manager(t, ModeAuto)
	must(t, m.Apply(cfg1))
	checkApplied(t, e, []string{"10.0.0.3"}, originals[1].servers, 0o644)
	must(t, m.Close())
}

// TestResolvConfConcurrent: Applies from several goroutines, then Close,
// leave the original (run with -race).
func TestResolvConfConcurrent(t *testing.T) {
	e := newEnv(t)
	originals[0].create(t, e)
	before := e.snap(t)
	m := e.manager(t, ModeResolvConf)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				if err := m.Apply([]Config{cfg1, cfg2}[(i+j)%2]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	must(t, m.Close())
	if got := e.snap(t); !sameSnap(got, before) {
		t.Errorf("after Close:\n got  %+v\n want %+v", got, before)
	}
}
