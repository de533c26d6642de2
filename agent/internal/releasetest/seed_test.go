package releasetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/agent/internal/netnslab"
)

const (
	tarballName = "tunnelmesh-linux-amd64.tar.gz"
	coordIP     = "10.98.0.1"
	coordURL    = "https://" + coordIP + ":8443" // the default listen of an empty coordinator.yaml
)

var (
	binaries = []string{"tunnelmesh", "tunnelmesh-registry", "tunnelmesh-relay", "tunnelmesh-sshgw", "tunnelmesh-meshdns",
		"tunnelmesh-storage", "tunnelmesh-nfsd", "tunnelmesh-dockerwatch"}
	units = []string{"tunnelmesh.service", "tunnelmesh-coordinator.service", "tunnelmesh-registry.service",
		"tunnelmesh-relay.service", "tunnelmesh-sshgw.service", "tunnelmesh-meshdns.service",
		"tunnelmesh-storage.service", "tunnelmesh-nfsd.service", "tunnelmesh-dockerwatch.service"}
)

// repoRoot is the repository root: this package is agent/internal/releasetest.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "release.sh")); err != nil {
		t.Fatalf("scripts/release.sh not found at the repository root %s: %v", root, err)
	}
	return root
}

var (
	releaseOnce sync.Once
	releaseOut  string
	releaseErr  error
)

// releaseDir returns a directory with the amd64 tarball and SHA256SUMS,
// built with scripts/release.sh once per test process, unless
// TUNNELMESH_RELEASE_DIR names one.
func releaseDir(t *testing.T, root string) string {
	t.Helper()
	if d := os.Getenv("TUNNELMESH_RELEASE_DIR"); d != "" {
		return d
	}
	releaseOnce.Do(func() {
		if releaseOut, releaseErr = os.MkdirTemp("", "tunnelmesh-release-"); releaseErr != nil {
			return
		}
		cmd := exec.Command(filepath.Join(root, "scripts", "release.sh"))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "ARCHES=amd64", "OUT="+releaseOut)
		if b, err := cmd.CombinedOutput(); err != nil {
			releaseErr = fmt.Errorf("scripts/release.sh: %v\n%s", err, b)
		}
	})
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	return releaseOut
}

func TestMain(m *testing.M) {
	code := m.Run()
	if releaseOut != "" {
		os.RemoveAll(releaseOut)
	}
	os.Exit(code)
}

// TestTarball checks what the tarball holds: every binary (static, the
// version of the work tree), every unit, the example configs, the licence,
// and a SHA256SUMS line that matches.
func TestTarball(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release tarball; skipped with -short")
	}
	root := repoRoot(t)
	dir := releaseDir(t, root)
	tb, err := os.ReadFile(filepath.Join(dir, tarballName))
	if err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tb)
	if want := hex.EncodeToString(sum[:]) + "  " + tarballName + "\n"; !strings.Contains(string(sums), want) {
		t.Errorf("SHA256SUMS = %q, want a line %q", sums, want)
	}

	files := map[string][]byte{}
	modes := map[string]int64{}
	gz, err := gzip.NewReader(bytes.NewReader(tb))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(h.Name, "/") || strings.HasPrefix(h.Name, "./") || strings.Contains(h.Name, "..") || h.Name == "." {
			t.Errorf("tarball entry %q: want plain relative names (extracting must not touch the current directory)", h.Name)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("tarball entry %q owned by %d:%d, want 0:0", h.Name, h.Uid, h.Gid)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name], modes[h.Name] = b, h.Mode
		}
	}
	want := append(slices.Clone(binaries), "LICENSE", "README.md", "VERSION",
		"examples/coordinator.example.yaml", "examples/relay.example.yaml", "examples/sshgw.example.yaml",
		"examples/Corefile", "examples/policy.example.yaml", "examples/storage.example.yaml",
		"examples/nfsd.example.yaml", "examples/dockerwatch.example.yaml")
	for _, u := range units {
		want = append(want, "systemd/"+u)
	}
	var got []string
	for name := range files {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("tarball files = %q, want %q", got, want)
	}
	for _, b := range binaries {
		if modes[b]&0o111 == 0 {
			t.Errorf("%s has mode %o, want executable", b, modes[b])
		}
		f, err := elf.NewFile(bytes.NewReader(files[b]))
		if err != nil {
			t.Errorf("%s: not an ELF file: %v", b, err)
			continue
		}
		if f.Machine != elf.EM_X86_64 {
			t.Errorf("%s: machine %v, want x86-64", b, f.Machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has a program interpreter: not a static binary", b)
			}
		}
	}
	if !bytes.Contains(files["LICENSE"], []byte("GNU AFFERO GENERAL PUBLIC LICENSE")) {
		t.Errorf("LICENSE is not the AGPL-3.0 text")
	}
	desc, err := exec.Command("git", "-C", root, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Fatalf("git describe: %v", err)
	}
	if v := strings.TrimSpace(string(files["VERSION"])); v != strings.TrimSpace(string(desc)) || v == "" {
		t.Errorf("VERSION = %q, want git describe = %q", v, strings.TrimSpace(string(desc)))
	}
}

// machine is a host of the seed test: a network namespace, and a private
// /var/lib, /etc/resolv.conf and host name for every command run on it.
type machine struct {
	name   string
	ns     string
	varLib string
	resolv string
}

// TestSeedGettingStarted extracts the tarball into a clean directory and
// runs the getting-started commands there, exactly as the README gives
// them, on a coordinator machine and two node machines.
func TestSeedGettingStarted(t *testing.T) {
	netnslab.NeedRoot(t, "creates network namespaces and TUN devices and runs the release as a user would",
		"ip", "unshare", "mount", "hostname", "ping")
	root := repoRoot(t)
	dir := releaseDir(t, root)
	l := netnslab.New(t, "tmrel")

	// A clean directory with the extracted tarball and an empty
	// coordinator.yaml, the current directory of every command.
	cwd := filepath.Join(l.Dir(), "tunnelmesh")
	if err := os.Mkdir(cwd, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xzf", filepath.Join(dir, tarballName), "-C", cwd).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(cwd, "coordinator.yaml"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(readFile(t, filepath.Join(cwd, "VERSION")))

	br := l.AddNS("br")
	l.Must("ip", "-n", br, "link", "add", "br0", "type", "bridge")
	l.Must("ip", "-n", br, "link", "set", "br0", "up")
	newMachine := func(name string, octet int) *machine {
		m := &machine{name: name, ns: l.AddNS(name), varLib: filepath.Join(l.Dir(), name, "var-lib"), resolv: filepath.Join(l.Dir(), name, "resolv.conf")}
		l.Link(br, "br0", "v"+name, m.ns, "eth0", fmt.Sprintf("10.98.0.%d/24", octet))
		if err := os.MkdirAll(m.varLib, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(m.resolv, []byte("nameserver "+coordIP+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return m
	}
	coord, n1, n2 := newMachine("coord", 1), newMachine("n1", 11), newMachine("n2", 12)

	// Versions, from the extracted files.
	for _, b := range binaries {
		out, err := coord.run(20*time.Second, cwd, "./"+b, "--version")
		if err != nil || !strings.HasPrefix(out, b+" "+version) {
			t.Errorf("./%s --version = %q, %v; want %s %s", b, out, err, b, version)
		}
	}
	if out, err := coord.run(20*time.Second, cwd, "./tunnelmesh", "version"); err != nil || out != "tunnelmesh "+version+"\n" {
		t.Errorf("./tunnelmesh version = %q, %v; want tunnelmesh %s", out, err, version)
	}

	// sudo ./tunnelmesh coordinator --config coordinator.yaml
	l.Start(coord.ns, "coordinator", coord.cmd(cwd, "./tunnelmesh", "coordinator", "--config", "coordinator.yaml")...)
	// sudo ./tunnelmesh admin --config coordinator.yaml tokens create (one single-use token per node)
	tok1 := token(t, coord, cwd)
	tok2 := token(t, coord, cwd)
	if tok1 == tok2 {
		t.Fatalf("two tokens create gave the same token")
	}
	// sudo ./tunnelmesh join --coordinator https://HOST:8443 --token TOKEN
	p1 := l.Start(n1.ns, "n1", n1.cmd(cwd, "./tunnelmesh", "join", "--coordinator", coordURL, "--token", tok1)...)
	p2 := l.Start(n2.ns, "n2", n2.cmd(cwd, "./tunnelmesh", "join", "--coordinator", coordURL, "--token", tok2)...)

	// tunnelmesh status, until each node sees the other.
	s1 := waitPeer(t, n1, cwd, p1, "n2")
	s2 := waitPeer(t, n2, cwd, p2, "n1")
	if s1.Version != version {
		t.Errorf("n1 status version %q, want %q", s1.Version, version)
	}
	text, err := n1.run(20*time.Second, cwd, "./tunnelmesh", "status")
	if err != nil || !strings.Contains(text, "n2") {
		t.Errorf("./tunnelmesh status on n1 = %q, %v; want it to list n2", text, err)
	}
	t.Logf("n1 %s, n2 %s; status on n1:\n%s", s1.IP, s2.IP, text)

	// ping (the system's) over the mesh, both ways.
	pingIP := func(m *machine, ip string) {
		t.Helper()
		var out string
		var err error
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if out, err = m.run(10*time.Second, cwd, "ping", "-c", "1", "-W", "2", ip); err == nil {
				return
			}
		}
		t.Errorf("ping -c 1 %s on %s: %q, %v", ip, m.name, out, err)
	}
	pingIP(n1, s2.IP.String())
	pingIP(n2, s1.IP.String())

	// tunnelmesh ping by name.
	tmPing := func(m *machine, peer string, ip string) {
		t.Helper()
		var out string
		var err error
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			out, err = m.run(20*time.Second, cwd, "./tunnelmesh", "ping", peer)
			if err == nil && strings.Contains(out, "pong from "+peer+" ("+ip+")") {
				return
			}
		}
		t.Errorf("./tunnelmesh ping %s on %s = %q, %v; want a pong from %s (%s)", peer, m.name, out, err, peer, ip)
	}
	tmPing(n1, "n2", s2.IP.String())
	tmPing(n2, "n1", s1.IP.String())

	// ping by name: mesh DNS from the tarball (packaging/README.md, "As
	// services"): a node joined with a dns-tagged token and
	// --advertise-dns runs ./tunnelmesh-meshdns with examples/Corefile; n1's
	// agent points its resolver at it, and the system's ping resolves n2.mesh.
	dnsTok := token(t, coord, cwd, "--tag", "dns")
	ns1 := newMachine("ns1", 13)
	pd := l.Start(ns1.ns, "ns1", ns1.cmd(cwd, "./tunnelmesh", "join", "--coordinator", coordURL, "--token", dnsTok, "--advertise-dns")...)
	waitPeer(t, ns1, cwd, pd, "n1")
	l.Start(ns1.ns, "meshdns", ns1.cmd(cwd, "./tunnelmesh-meshdns", "-conf", "examples/Corefile")...)
	var out string
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err = n1.run(20*time.Second, cwd, "ping", "-c", "1", "-W", "2", "n2.mesh")
		if err == nil && strings.Contains(out, "("+s2.IP.String()+")") {
			t.Logf("ping -c 1 n2.mesh on n1:\n%s", out)
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("ping -c 1 n2.mesh on n1 = %q, %v; want it to resolve to %s and answer; n1's resolv.conf:\n%s",
				out, err, s2.IP, readFile(t, n1.resolv))
			break
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A token is single use: another join with tok1 is refused.
	n3 := newMachine("n3", 14)
	out, err = n3.run(60*time.Second, cwd, "./tunnelmesh", "join", "--coordinator", coordURL, "--token", tok1)
	if err == nil {
		t.Errorf("a second join with a used token succeeded: %q", out)
	}
}

// cmd is args run on m: in a private mount and UTS namespace with m's
// /var/lib, resolv.conf and host name, in directory cwd. unshare does not
// fork and sh execs, so the process the lab starts is the command itself.
func (m *machine) cmd(cwd string, args ...string) []string {
	script := `mount --bind "$0" /var/lib && mount --bind "$1" /etc/resolv.conf && hostname "$2" && cd "$3" && shift 3 && exec "$@"`
	return append([]string{"unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script,
		m.varLib, m.resolv, m.name, cwd}, args...)
}

// run runs args on m (see cmd) and returns its stdout; the error names the
// command as typed and carries its stderr.
func (m *machine) run(timeout time.Duration, cwd string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", m.ns}, m.cmd(cwd, args...)...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s on %s: %v: %s", strings.Join(args, " "), m.name, err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// token runs the README's `tunnelmesh admin --config coordinator.yaml
// tokens create` (with extra flags) on the coordinator machine, retrying
// while it starts.
func token(t *testing.T, m *machine, cwd string, extra ...string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	args := append([]string{"./tunnelmesh", "admin", "--config", "coordinator.yaml", "tokens", "create"}, extra...)
	for {
		out, err := m.run(20*time.Second, cwd, args...)
		if tok := strings.TrimSpace(out); err == nil && tok != "" && !strings.ContainsAny(tok, " \n") {
			return tok
		}
		if time.Now().After(deadline) {
			t.Fatalf("tokens create: %q, %v", out, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitPeer polls `tunnelmesh status --json` on m until it lists peer.
func waitPeer(t *testing.T, m *machine, cwd string, p *netnslab.Proc, peer string) localapi.Status {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if p.Exited() {
			t.Fatalf("node %s exited: %v", m.name, p.Err())
		}
		out, err := m.run(20*time.Second, cwd, "./tunnelmesh", "status", "--json")
		if err != nil {
			last = err.Error()
		} else {
			var s localapi.Status
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatalf("status --json on %s: %v: %q", m.name, err, out)
			}
			if s.Name != m.name {
				t.Fatalf("node on %s is named %q, want its host name", m.name, s.Name)
			}
			for _, pe := range s.Peers {
				if pe.Name == peer && s.IP.IsValid() {
					return s
				}
			}
			last = out
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s does not list %s within 90 s; last status: %s", m.name, peer, last)
	return localapi.Status{}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
