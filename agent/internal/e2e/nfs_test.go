package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/netnslab"
)

var (
	nfsdOnce sync.Once
	nfsdBin  string
	nfsdErr  error
)

// buildNFSD compiles tunnelmesh-nfsd (module nfsd, next to agent in the
// repository) once per test binary.
func buildNFSD(t *testing.T) string {
	t.Helper()
	nfsdOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tunnelmesh-e2e-nfsd-")
		if err != nil {
			nfsdErr = err
			return
		}
		src, err := filepath.Abs(filepath.Join("..", "..", "..", "nfsd"))
		if err != nil {
			nfsdErr = err
			return
		}
		nfsdBin = filepath.Join(dir, "tunnelmesh-nfsd")
		cmd := exec.Command("go", "build", "-o", nfsdBin, "./cmd/tunnelmesh-nfsd")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			nfsdErr = fmt.Errorf("go build tunnelmesh-nfsd: %v\n%s", err, out)
		}
	})
	if nfsdErr != nil {
		t.Fatal(nfsdErr)
	}
	return nfsdBin
}

// cacheDir is $TUNNELMESH_CACHE_DIR/name, else name in the user cache
// directory's tunnelmesh.
func cacheDir(t *testing.T, name string) string {
	t.Helper()
	cache := os.Getenv("TUNNELMESH_CACHE_DIR")
	if cache == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("no cache directory: %v (set TUNNELMESH_CACHE_DIR)", err)
		}
		cache = filepath.Join(d, "tunnelmesh")
	}
	return filepath.Join(cache, name)
}

// fetchShowmount fetches (or finds cached) Debian's showmount with
// nfsd/scripts/fetch-showmount.sh, in cacheDir "nfs-common".
func fetchShowmount(t *testing.T) string {
	t.Helper()
	cache := cacheDir(t, "nfs-common")
	script, err := filepath.Abs(filepath.Join("..", "..", "..", "nfsd", "scripts", "fetch-showmount.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(script, cache).CombinedOutput(); err != nil {
		t.Fatalf("fetch showmount: %v\n%s", err, out)
	}
	return filepath.Join(cache, "showmount")
}

// buildQemuGuest builds (or finds cached) the kernel-client guest of
// nfsd/qemu: cacheDir "nfsd-qemu".
func buildQemuGuest(t *testing.T) (kernel, initrd string) {
	t.Helper()
	cache := cacheDir(t, "nfsd-qemu")
	script, err := filepath.Abs(filepath.Join("..", "..", "..", "nfsd", "qemu", "build-guest.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(script, cache).CombinedOutput(); err != nil {
		t.Fatalf("build the qemu guest: %v\n%s", err, out)
	}
	return filepath.Join(cache, "vmlinuz"), filepath.Join(cache, "initramfs.cpio.gz")
}

// TestNFSOverMesh is issue 15's mesh lab: a coordinator with the default
// policy; node files (tagged nfs, --advertise-nfs) with tunnelmesh-nfsd
// beside it in its namespace, exporting "shared" with grants from the
// policy's nfs section (read-write to build1); build1 and phone. Debian's libnfs-utils run in the clients' namespaces
// against nfs://<files' mesh IP>/shared: build1 copies a file up and back
// intact, phone (no grant) is refused, showmount -e lists each node's
// exports, a policy apply grants and revokes phone's access live, Debian's kernel NFSv3 client (under
// qemu in build1's namespace) mounts and works on the export, and build1
// is refused once removed from the mesh.
func TestNFSOverMesh(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("CI") == "true" {
		t.Fatal("needs root (network namespaces, TUN), and CI runs as root")
	}
	for _, tool := range []string{"nfs-ls", "nfs-cp", "nfs-cat"} {
		if _, err := exec.LookPath(tool); err != nil && (os.Geteuid() == 0 || os.Getenv("CI") == "true") {
			t.Fatalf("needs %s (libnfs-utils, scripts/install-deps.sh): %v", tool, err)
		}
	}
	l := newLab(t)
	nfsd := buildNFSD(t)

	cns := l.addHost("c", 1)
	nss := map[string]string{}
	for i, h := range []string{"files", "build1", "phone"} {
		nss[h] = l.addHost(h, 21+i)
	}
	cfgPath := l.defaultPolicyCoordinator(cns, "coord-nfs", coordIP, "debug")
	tok := l.adminToken(cns, cfgPath)
	nfsTok := l.adminToken(cns, cfgPath, "--tag", "nfs")

	files := l.join(nss["files"], "files", "files", "", coordURL, nfsTok, "--advertise-nfs", "--dns=false")
	filesIP := l.waitStatus(files, 20*time.Second, "joined", func(s localapi.Status) bool { return s.IP.IsValid() }).IP.String()
	export := filepath.Join(l.Dir(), "export-shared")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	nfsCfg := filepath.Join(l.Dir(), "nfsd.yaml")
	if err := os.WriteFile(nfsCfg, []byte(fmt.Sprintf(`credentials: %s
exports:
  - name: shared
    dir: %s
    owner: {uid: 1000, gid: 1000}
`, filepath.Join(files.stateDir, "credentials.json"), export)), 0o600); err != nil {
		t.Fatal(err)
	}
	nfsdProc := l.Start(nss["files"], "nfsd", nfsd, "-config", nfsCfg, "-log-level", "debug")

	build1 := l.join(nss["build1"], "build1", "build1", "", coordURL, tok, "--dns=false")
	phone := l.join(nss["phone"], "phone", "phone", "", coordURL, tok, "--dns=false")
	for _, n := range []*node{build1, phone} {
		l.waitStatus(n, 20*time.Second, "peer files", func(s localapi.Status) bool {
			for _, p := range peerNames(s) {
				if p == "files" {
					return true
				}
			}
			return false
		})
	}

	// The policy's nfs section grants: no allow list in nfsd's config.
	applyNFS := func(name, tests, grants string) time.Time {
		t.Helper()
		return l.applyDefaultPolicyWith(cns, cfgPath, name, tests+"nfs:\n  exports:\n    shared:\n"+grants)
	}
	const onlyBuild1 = "  - {name: build1 can write export shared, from: build1, nfs_accept: write:shared}\n" +
		"  - {name: phone cannot mount export shared, from: phone, nfs_deny: mount:shared}\n"
	applyNFS("nfs-build1", onlyBuild1, "      read_write: [build1]\n")

	url := func(p string) string { return "nfs://" + filesIP + "/shared" + p + "?nfsport=2049&mountport=2049" }
	in := func(ns string, args ...string) (string, error) { return l.Run(ns, 60*time.Second, args...) }

	t.Run("build1 copies up and back", func(t *testing.T) {
		data := make([]byte, 64<<20+17)
		rand.Read(data)
		src := filepath.Join(l.Dir(), "src.bin")
		if err := os.WriteFile(src, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// The first try may race the tunnel's handshake and nfsd's start.
		waitFor(t, 30*time.Second, "nfs-cp up from build1", func() (bool, string) {
			out, err := in(nss["build1"], "nfs-cp", src, url("/up.bin"))
			return err == nil, fmt.Sprintf("%s %v", out, err)
		})
		back := filepath.Join(l.Dir(), "back.bin")
		start := time.Now()
		if out, err := in(nss["build1"], "nfs-cp", url("/up.bin"), back); err != nil {
			t.Fatalf("nfs-cp back: %v\n%s", err, out)
		}
		readTime := time.Since(start)
		start = time.Now()
		if out, err := in(nss["build1"], "nfs-cp", src, url("/up2.bin")); err != nil {
			t.Fatalf("nfs-cp up again: %v\n%s", err, out)
		}
		t.Logf("nfs-cp of %d MiB over the mesh: read %v, write %v", len(data)>>20, readTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		got, _ := os.ReadFile(back)
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatalf("round trip over the mesh: %d bytes back, sha256 differs from the %d sent", len(got), len(data))
		}
		if disk, _ := os.ReadFile(filepath.Join(export, "up.bin")); !bytes.Equal(disk, data) {
			t.Fatal("the file in the export differs from what build1 sent")
		}
		if out, err := in(nss["build1"], "nfs-ls", url("")); err != nil || !strings.Contains(out, "up.bin") {
			t.Fatalf("nfs-ls from build1 = %v\n%s", err, out)
		}
		// Without port options libnfs asks the port mapper on 111.
		if out, err := in(nss["build1"], "nfs-ls", "nfs://"+filesIP+"/shared"); err != nil || !strings.Contains(out, "up.bin") {
			t.Fatalf("nfs-ls from build1 through the port mapper = %v\n%s", err, out)
		}
	})
	t.Run("phone has no grant", func(t *testing.T) {
		// phone reaches tcp/2049 (the default policy opens it to nodes
		// tagged nfs), so the refusal is nfsd's.
		out, err := in(nss["phone"], "nfs-ls", url(""))
		if err == nil || strings.Contains(out, "up.bin") {
			t.Fatalf("nfs-ls from phone = %v\n%s", err, out)
		}
		if out, err := in(nss["phone"], "nfs-cat", url("/up.bin")); err == nil {
			t.Fatalf("nfs-cat from phone succeeded: %d bytes", len(out))
		}
		phoneIP := l.waitStatus(phone, 5*time.Second, "status", func(s localapi.Status) bool { return s.IP.IsValid() }).IP.String()
		logs, _ := os.ReadFile(nfsdProc.Log)
		if !bytes.Contains(logs, []byte(`msg="mount refused"`)) || !bytes.Contains(logs, []byte("remote="+phoneIP+" export=shared")) {
			t.Fatalf("nfsd did not log refusing phone's mount (%s)", phoneIP)
		}
	})
	// showmount -e asks files' port mapper for MOUNT, then MOUNT EXPORT:
	// each node sees only what it may mount.
	showmount := fetchShowmount(t)
	exportsOf := func(ns string) string {
		t.Helper()
		out, err := in(ns, showmount, "-e", filesIP)
		if err != nil || !strings.Contains(out, "Export list for "+filesIP) {
			t.Fatalf("showmount -e %s: %v\n%s", filesIP, err, out)
		}
		return out
	}
	t.Run("showmount lists the asker's exports", func(t *testing.T) {
		if out := exportsOf(nss["build1"]); !strings.Contains(out, "\n/shared ") {
			t.Errorf("showmount -e from build1 does not list /shared:\n%s", out)
		}
		if out := exportsOf(nss["phone"]); strings.Contains(out, "/shared") {
			t.Errorf("showmount -e from phone (no grant) lists /shared:\n%s", out)
		}
	})
	t.Run("policy grants, live", func(t *testing.T) {
		// phone gets a read-only grant: it lists and reads, cannot write.
		applyNFS("nfs-phone-ro", "  - {name: phone reads shared, from: phone, nfs_accept: mount:shared, nfs_deny: write:shared}\n",
			"      read_write: [build1]\n      read_only: [phone]\n")
		waitFor(t, 30*time.Second, "phone lists shared", func() (bool, string) {
			out, err := in(nss["phone"], "nfs-ls", url(""))
			return err == nil && strings.Contains(out, "up.bin"), fmt.Sprintf("%s %v", out, err)
		})
		if out := exportsOf(nss["phone"]); !strings.Contains(out, "\n/shared ") {
			t.Errorf("showmount -e from phone (read-only grant) does not list /shared:\n%s", out)
		}
		src := filepath.Join(l.Dir(), "phone.bin")
		if err := os.WriteFile(src, []byte("from phone\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := in(nss["phone"], "nfs-cp", src, url("/phone.bin")); err == nil {
			t.Errorf("phone wrote with a read-only grant: %s", out)
		}
		if _, err := os.Stat(filepath.Join(export, "phone.bin")); err == nil {
			t.Error("phone.bin exists in the export")
		}
		// Revoked: phone is refused again within the 2 s target.
		start := applyNFS("nfs-revoke", onlyBuild1, "      read_write: [build1]\n")
		waitFor(t, 20*time.Second, "phone refused after the revoke", func() (bool, string) {
			out, err := l.Run(nss["phone"], 5*time.Second, "nfs-ls", url(""))
			return err != nil, out
		})
		t.Logf("phone's mounts refused %v after the policy apply returned (issue target: within 2 s)", time.Since(start).Round(time.Millisecond))
		if out := exportsOf(nss["phone"]); strings.Contains(out, "/shared") {
			t.Errorf("showmount -e from phone after the revoke lists /shared:\n%s", out)
		}
	})
	// The kernel client keeps a mount open across build1's removal: after its
	// steps it writes a file every 0.2 s (soft mount) until that fails.
	var guest *netnslab.Proc
	t.Run("kernel client over the mesh", func(t *testing.T) {
		// Debian's kernel under qemu in build1's namespace: with user
		// networking the guest's connection to files' mesh address leaves
		// from build1's namespace, over the mesh, as build1. It mounts
		// without port options: nfsd's port mapper answers.
		for _, tool := range []string{"qemu-system-x86_64", "busybox", "apt-get", "dpkg-deb"} {
			if _, err := exec.LookPath(tool); err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("needs %s (scripts/install-deps.sh): %v", tool, err)
				}
				t.Skipf("needs %s: %v", tool, err)
			}
		}
		kernel, initrd := buildQemuGuest(t)
		guest = l.Start(nss["build1"], "qemu-build1", "qemu-system-x86_64", "-nographic", "-no-reboot", "-m", "256", "-smp", "1",
			"-kernel", kernel, "-initrd", initrd, "-accel", "tcg",
			"-append", "console=ttyS0 panic=-1 quiet nfstest.probe=1 nfstest.server="+filesIP+" nfstest.export=/shared",
			"-netdev", "user,id=n0", "-device", "e1000,netdev=n0")
		waitFor(t, 5*time.Minute, "the guest's steps and its open mount", func() (bool, string) {
			b, _ := os.ReadFile(guest.Log)
			return bytes.Contains(b, []byte("NFSTEST probing")) || guest.Exited(), ""
		})
		console, _ := os.ReadFile(guest.Log)
		for _, line := range strings.Split(string(console), "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "NFSTEST "); ok {
				t.Logf("guest: %s", rest)
				if strings.HasPrefix(rest, "FAIL ") {
					t.Errorf("guest: %s", rest)
				}
			}
		}
		if !bytes.Contains(console, []byte("NFSTEST probing")) {
			t.Fatalf("guest stopped before probing; console:\n%s", console)
		}
		if b, err := os.ReadFile(filepath.Join(export, "guest-was-here")); err != nil || string(b) != "written by the kernel client\n" {
			t.Fatalf("guest-was-here in the export = %q, %v", b, err)
		}
	})
	t.Run("removed node refused", func(t *testing.T) {
		start := time.Now()
		if _, err := l.Run(cns, 10*time.Second, l.bin, "admin", "--config", cfgPath, "nodes", "remove", "build1"); err != nil {
			t.Fatal(err)
		}
		// Each try gives up after 1 s: once the netmaps have changed,
		// build1's packets no longer reach files at all (its peer is gone)
		// and nfsd would refuse the address anyway, so a try hangs rather
		// than failing fast. The time logged is at most 1 s late.
		waitFor(t, 20*time.Second, "build1 refused after its removal", func() (bool, string) {
			out, err := l.Run(nss["build1"], time.Second, "nfs-ls", url(""))
			return err != nil, out
		})
		t.Logf("build1's new mounts refused %v after its removal (issue target: within 2 s)", time.Since(start).Round(time.Millisecond))
		if guest == nil {
			return
		}
		// The kernel's open mount: writes fail within the soft mount's
		// 0.5 s timeout of the removal taking effect.
		waitFor(t, 60*time.Second, "the guest's open mount to fail", func() (bool, string) {
			b, _ := os.ReadFile(guest.Log)
			return bytes.Contains(b, []byte("NFSTEST probe failed")), ""
		})
		t.Logf("build1's open kernel mount failed %v after its removal (0.2 s probes, 0.5 s soft timeout)", time.Since(start).Round(time.Millisecond))
		// nfsd itself cut the open connection, not only the tunnel.
		waitFor(t, 20*time.Second, "nfsd to close build1's open connection", func() (bool, string) {
			b, _ := os.ReadFile(nfsdProc.Log)
			return bytes.Contains(b, []byte(`msg="closing the connection of a node no longer in the mesh"`)), ""
		})
		select {
		case <-guest.Done():
		case <-time.After(60 * time.Second):
			t.Error("the guest did not power off")
		}
	})
}
