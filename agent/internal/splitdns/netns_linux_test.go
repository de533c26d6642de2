package splitdns

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/dns/dnsmessage"
)

// childEnv marks the re-executed test binary running inside the private
// mount and network namespaces.
const childEnv = "TUNNELMESH_SPLITDNS_NETNS_CHILD"

// TestSystemResolver runs the real thing: the test binary re-executes itself
// in new mount and network namespaces, where /etc/resolv.conf is replaced by
// a file of its own, serves DNS on loopback and checks with getent (glibc)
// and Go's resolver that mesh names go to the mesh server first, that other
// names still resolve, and that Close restores the file. The host's
// resolv.conf is checked untouched.
func TestSystemResolver(t *testing.T) {
	testenv.NeedRoot(t, "runs the real resolv.conf path in private mount and network namespaces")
	testenv.NeedCommand(t, "getent", "Debian libc-bin")
	before, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		testenv.Missing(t, "needs an /etc/resolv.conf to mount over: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNamespaceChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWNET}
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	for _, want := range []string{"--- PASS: TestNamespaceChild/bind-mounted", "--- PASS: TestNamespaceChild/symlink"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("child output lacks %q", want)
		}
	}
	if after, _ := os.ReadFile("/etc/resolv.conf"); !bytes.Equal(after, before) {
		t.Errorf("host /etc/resolv.conf changed:\n%s", after)
	}
}

// TestNamespaceChild is TestSystemResolver's half inside the namespaces.
func TestNamespaceChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("runs only inside TestSystemResolver's namespaces")
	}
	must(t, syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""))
	lo, err := netlink.LinkByName("lo")
	must(t, err)
	must(t, netlink.LinkSetUp(lo))
	// A mesh address: getaddrinfo's AI_ADDRCONFIG (getent ahosts) asks no
	// A queries on a host whose only IPv4 address is 127.0.0.1.
	must(t, netlink.AddrAdd(lo, &netlink.Addr{IPNet: netlink.NewIPNet(net.ParseIP("100.64.0.1"))}))
	if !nsswitchUsesDNS(t) {
		testenv.Missing(t, "needs a hosts line with dns in /etc/nsswitch.conf")
	}
	const original = "# original, from the test\nnameserver 127.0.0.3\noptions attempts:1\n"

	// A bind-mounted resolv.conf, as containers have: rename over it fails
	// with EBUSY and the file is rewritten in place.
	t.Run("bind-mounted", func(t *testing.T) {
		tmp := t.TempDir()
		f := filepath.Join(tmp, "resolv.conf")
		must(t, os.WriteFile(f, []byte(original), 0o644))
		must(t, syscall.Mount(f, "/etc/resolv.conf", "", syscall.MS_BIND, ""))
		t.Cleanup(func() { syscall.Unmount("/etc/resolv.conf", syscall.MNT_DETACH) })
		exercise(t, filepath.Join(tmp, "state"), true, func(t *testing.T) {
			// Written in place: the mounted file itself holds the mesh server.
			if b, _ := os.ReadFile(f); nameservers(b)[0] != "127.0.0.2" {
				t.Errorf("mounted file not rewritten in place:\n%s", b)
			}
		})
	})

	// /etc as a plain directory whose resolv.conf is a symlink, as with
	// resolvconf or systemd: the file is replaced by rename and the symlink
	// comes back on Close. /etc is rebuilt as symlinks to the real entries.
	t.Run("symlink", func(t *testing.T) {
		tmp := t.TempDir()
		real, etc, run := filepath.Join(tmp, "realetc"), filepath.Join(tmp, "etc"), filepath.Join(tmp, "run")
		for _, d := range []string{real, etc, run} {
			must(t, os.Mkdir(d, 0o755))
		}
		must(t, syscall.Mount("/etc", real, "", syscall.MS_BIND|syscall.MS_REC, ""))
		t.Cleanup(func() { syscall.Unmount(real, syscall.MNT_DETACH) })
		ents, err := os.ReadDir(real)
		must(t, err)
		for _, e := range ents {
			if e.Name() != "resolv.conf" {
				must(t, os.Symlink(filepath.Join(real, e.Name()), filepath.Join(etc, e.Name())))
			}
		}
		must(t, os.WriteFile(filepath.Join(run, "resolv.conf"), []byte(original), 0o644))
		must(t, os.Symlink(filepath.Join(run, "resolv.conf"), filepath.Join(etc, "resolv.conf")))
		must(t, syscall.Mount(etc, "/etc", "", syscall.MS_BIND, ""))
		t.Cleanup(func() { syscall.Unmount("/etc", syscall.MNT_DETACH) })
		exercise(t, filepath.Join(tmp, "state"), false, func(t *testing.T) {
			// Replaced by rename: a regular file now, the link target untouched.
			if st, err := os.Lstat("/etc/resolv.conf"); err != nil || !st.Mode().IsRegular() {
				t.Errorf("/etc/resolv.conf after Apply: %v, %v; want a regular file", st, err)
			}
			if b, _ := os.ReadFile(filepath.Join(run, "resolv.conf")); string(b) != original {
				t.Errorf("symlink target written through: %q", b)
			}
		})
		if b, _ := os.ReadFile(filepath.Join(run, "resolv.conf")); string(b) != original {
			t.Errorf("symlink target changed: %q", b)
		}
	})
}

// exercise runs a mesh DNS server on 127.0.0.2 and the "original" one on
// 127.0.0.3 (named in /etc/resolv.conf), applies, resolves and closes.
func exercise(t *testing.T, stateDir string, goResolver bool, afterApply func(t *testing.T)) {
	meshSrv := startDNS(t, "127.0.0.2", map[string]string{"db1.mesh.": "100.64.0.5"},
		map[string]string{"5.0.64.100.in-addr.arpa.": "db1.mesh."}, dnsmessage.RCodeRefused)
	upstream := startDNS(t, "127.0.0.3", map[string]string{"www.example.test.": "192.0.2.10"}, nil, dnsmessage.RCodeNameError)

	before, err := readSnapshot("/etc/resolv.conf")
	must(t, err)
	if _, ok := lookup(t, "ahostsv4", "db1.mesh"); ok {
		t.Fatal("db1.mesh resolves before Apply")
	}
	m, err := New(Options{Mode: ModeResolvConf, Link: "lo", StateDir: stateDir})
	must(t, err)
	must(t, m.Apply(Config{Zone: "mesh", Servers: []netip.Addr{netip.MustParseAddr("127.0.0.2")}, MeshCIDR: netip.MustParsePrefix("100.64.0.0/10")}))
	meshSrv.take()
	upstream.take()
	afterApply(t)

	for _, c := range []struct{ db, key, want, meshQuery string }{
		{"ahostsv4", "db1.mesh", "100.64.0.5", "db1.mesh. A"},
		{"hosts", "100.64.0.5", "db1.mesh", "5.0.64.100.in-addr.arpa. PTR"},
	} {
		if got, _ := lookup(t, c.db, c.key); got != c.want {
			t.Errorf("getent %s %s = %q, want %q", c.db, c.key, got, c.want)
		}
		if q := meshSrv.take(); len(q) != 1 || q[0] != c.meshQuery {
			t.Errorf("getent %s %s: mesh server asked %q, want [%s]", c.db, c.key, q, c.meshQuery)
		}
		if q := upstream.take(); len(q) != 0 {
			t.Errorf("getent %s %s: the original server was asked %q", c.db, c.key, q)
		}
	}
	// Other names: the mesh server is asked first (it refuses, as a server
	// that does not forward would), then the original one answers.
	if got, _ := lookup(t, "ahostsv4", "www.example.test"); got != "192.0.2.10" {
		t.Errorf("getent ahostsv4 www.example.test = %q, want 192.0.2.10", got)
	}
	if q := meshSrv.take(); len(q) != 1 || q[0] != "www.example.test. A" {
		t.Errorf("mesh server asked %q, want [www.example.test. A]", q)
	}
	if q := upstream.take(); len(q) != 1 || q[0] != "www.example.test. A" {
		t.Errorf("original server asked %q, want [www.example.test. A]", q)
	}
	if goResolver {
		r := &net.Resolver{PreferGo: true}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for name, want := range map[string]string{"db1.mesh": "100.64.0.5", "www.example.test": "192.0.2.10"} {
			addrs, err := r.LookupHost(ctx, name)
			if err != nil || len(addrs) != 1 || addrs[0] != want {
				t.Errorf("Go LookupHost(%s) = %q, %v; want [%s]", name, addrs, err, want)
			}
		}
	}
	// The mesh server down: other names still resolve through the original.
	meshSrv.stop()
	if got, _ := lookup(t, "ahostsv4", "www.example.test"); got != "192.0.2.10" {
		t.Errorf("mesh server down: getent ahostsv4 www.example.test = %q, want 192.0.2.10", got)
	}

	must(t, m.Close())
	after, err := readSnapshot("/etc/resolv.conf")
	must(t, err)
	if !sameSnap(after, before) {
		t.Errorf("after Close:\n got  %+v\n want %+v", after, before)
	}
	if _, ok := lookup(t, "ahostsv4", "db1.mesh"); ok {
		t.Error("db1.mesh still resolves after Close")
	}
}

func nsswitchUsesDNS(t *testing.T) bool {
	b, err := os.ReadFile("/etc/nsswitch.conf")
	if err != nil {
		return true // glibc's default includes dns
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "hosts:" {
			return strings.Contains(line, " dns")
		}
	}
	return true
}

// lookup runs getent and returns the first field of its first line for
// ahostsv4 (the address), the second for hosts with an address (the name).
func lookup(t *testing.T, db, key string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "getent", db, key).Output()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("getent %s %s: %v", db, key, err)
		}
		return "", false
	}
	f := strings.Fields(string(out))
	if db == "hosts" && len(f) > 1 {
		return f[1], true
	}
	if len(f) == 0 {
		return "", false
	}
	return f[0], true
}

// dnsServer answers A and PTR queries from tables over UDP on addr:53 and
// answers rcode for names it does not know.
type dnsServer struct {
	conn *net.UDPConn
	wg   sync.WaitGroup
	once sync.Once

	mu      sync.Mutex
	queries []string // "name TYPE", in order
}

func startDNS(t *testing.T, addr string, a, ptr map[string]string, rcode dnsmessage.RCode) *dnsServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), 53)))
	must(t, err)
	s := &dnsServer{conn: conn}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if resp := s.answer(buf[:n], a, ptr, rcode); resp != nil {
				conn.WriteToUDPAddrPort(resp, from)
			}
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *dnsServer) stop() {
	s.once.Do(func() {
		s.conn.Close()
		s.wg.Wait()
	})
}

func (s *dnsServer) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queries
	s.queries = nil
	return q
}

func (s *dnsServer) answer(msg []byte, a, ptr map[string]string, rcode dnsmessage.RCode) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(q.Name.String())
	s.mu.Lock()
	s.queries = append(s.queries, name+" "+strings.TrimPrefix(q.Type.String(), "Type"))
	s.mu.Unlock()
	_, knownA := a[name]
	_, knownPTR := ptr[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !knownA && !knownPTR {
		rh.RCode = rcode
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}
	switch {
	case q.Type == dnsmessage.TypeA && knownA:
		b.AResource(hdr, dnsmessage.AResource{A: netip.MustParseAddr(a[name]).As4()})
	case q.Type == dnsmessage.TypePTR && knownPTR:
		b.PTRResource(hdr, dnsmessage.PTRResource{PTR: dnsmessage.MustNewName(ptr[name])})
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
