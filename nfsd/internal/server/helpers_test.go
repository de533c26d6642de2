package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/config"
	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/identity"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// The test mesh: nfs serves; build1 (tag ci) writes shared; viewer (tag
// viewers) reads it; phone has no grant.
var (
	meshPrefix = netip.MustParsePrefix("100.64.0.0/10")
	ipNFS      = netip.MustParseAddr("100.64.0.1")
	ipBuild1   = netip.MustParseAddr("100.64.0.2")
	ipPhone    = netip.MustParseAddr("100.64.0.3")
	ipViewer   = netip.MustParseAddr("100.64.0.4")
)

func testNetmap(version uint64, without ...string) *api.Netmap {
	nm := &api.Netmap{Version: version, MeshCIDR: meshPrefix,
		Self: api.Node{ID: "n0", Name: "nfs", IP: ipNFS}}
	for _, n := range []api.Node{
		{ID: "n1", Name: "build1", IP: ipBuild1, Tags: []string{"ci"}},
		{ID: "n2", Name: "phone", IP: ipPhone},
		{ID: "n3", Name: "viewer", IP: ipViewer, Tags: []string{"viewers"}},
	} {
		skip := false
		for _, w := range without {
			skip = skip || w == n.Name
		}
		if !skip {
			nm.Peers = append(nm.Peers, n)
		}
	}
	return nm
}

type fixture struct {
	t       testing.TB
	shared  string // export dirs
	backups string
	cfg     config.Config
	ids     *identity.Watcher
	srv     *Server
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{t: t, shared: filepath.Join(base, "shared"), backups: filepath.Join(base, "backups")}
	for _, d := range []string{f.shared, f.backups} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "secret"), []byte("outside the export"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.backups, "db.dump"), []byte("backup data"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
credentials: /unused
exports:
  - name: shared
    dir: ` + f.shared + `
    owner: {uid: 1234, gid: 1234}
    allow: {read_write: [build1], read_only: ["tag:viewers"]}
  - name: backups
    dir: ` + f.backups + `
    read_only: true
    allow: {read_only: [build1]}
`))
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	f.ids = identity.NewWatcher()
	f.ids.Apply(testNetmap(1))
	f.start()
	return f
}

// start starts a Server for the fixture's config (again, after stop: a
// restarted nfsd).
func (f *fixture) start() {
	f.t.Helper()
	srv, err := New(f.cfg, f.ids, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.t.Fatal(err)
	}
	f.srv = srv
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	f.cancel()
	f.wg.Wait()
	f.srv.Close()
}

// listen serves a loopback listener whose connections all come "from" ip,
// as connections over the mesh from that node do; it returns the address.
func (f *fixture) listen(ip netip.Addr) string { return f.listenAt(ip, "127.0.0.1:0") }

// listenAt is listen on a given address (to serve a port again after a
// restart).
func (f *fixture) listenAt(ip netip.Addr, addr string) string {
	f.t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := f.srv.Serve(f.ctx, &fromListener{Listener: l, from: ip}); err != nil {
			f.t.Errorf("Serve: %v", err)
		}
	}()
	return l.Addr().String()
}

type fromListener struct {
	net.Listener
	from netip.Addr
}

func (l *fromListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &fromConn{Conn: c, from: net.TCPAddrFromAddrPort(netip.AddrPortFrom(l.from, 700))}, nil
}

type fromConn struct {
	net.Conn
	from net.Addr
}

func (c *fromConn) RemoteAddr() net.Addr { return c.from }

// mount dials addr with go-nfs-client and mounts export.
func mount(t *testing.T, addr, export string) (*nfsc.Target, error) {
	t.Helper()
	c := dialClient(t, addr)
	m := &nfsc.Mount{Client: c}
	return m.Mount("/"+export, rpc.NewAuthUnix("test", 0, 0).Auth())
}

func mustMount(t *testing.T, addr, export string) *nfsc.Target {
	t.Helper()
	v, err := mount(t, addr, export)
	if err != nil {
		t.Fatalf("mount %s: %v", export, err)
	}
	return v
}

// dialClient dials addr with go-nfs-client, which binds a random local
// port and gives up if it is taken: try again then.
func dialClient(t *testing.T, addr string) *rpc.Client {
	t.Helper()
	for i := 0; ; i++ {
		c, err := rpc.DialTCP("tcp", addr, false)
		if err == nil {
			t.Cleanup(c.Close)
			return c
		}
		if !errors.Is(err, syscall.EADDRINUSE) || i == 20 {
			t.Fatalf("dial %s: %v", addr, err)
		}
	}
}

// rawConn speaks ONC RPC over TCP by hand, for checks that go-nfs-client's
// retrying would hide.
type rawConn struct {
	c   net.Conn
	r   *bufio.Reader
	xid uint32
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	r := dialRawNoCleanup(addr)
	if r == nil {
		t.Fatalf("dial %s failed", addr)
	}
	t.Cleanup(func() { r.c.Close() })
	return r
}

// dialRawNoCleanup dials addr; the caller closes r.c. It returns nil when
// the dial fails.
func dialRawNoCleanup(addr string) *rawConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil
	}
	return &rawConn{c: c, r: bufio.NewReader(c)}
}

var errRejected = errors.New("rpc call not accepted")

// call sends one call and returns the reply's results (after accept_stat
// SUCCESS).
func (r *rawConn) call(prog, vers, proc uint32, args []byte) ([]byte, error) {
	return r.callInto(prog, vers, proc, args, nil, nil)
}

// callInto is call building the call in out and reading the reply into rec
// when they are large enough (a benchmark's client reuses them).
func (r *rawConn) callInto(prog, vers, proc uint32, args, out, rec []byte) ([]byte, error) {
	r.xid++
	b := binary.BigEndian.AppendUint32(out[:0], 0) // record mark, set below
	for _, v := range [...]uint32{r.xid, 0, 2, prog, vers, proc, 0, 0, 0, 0} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = append(b, args...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4)|1<<31)
	r.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		return nil, err
	}
	var mark [4]byte
	if _, err := io.ReadFull(r.r, mark[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(mark[:]) &^ (1 << 31))
	if cap(rec) < n {
		rec = make([]byte, n)
	}
	rec = rec[:n]
	if _, err := io.ReadFull(r.r, rec); err != nil {
		return nil, err
	}
	// xid, REPLY, MSG_ACCEPTED, verf flavor, verf len (0), accept_stat
	if len(rec) < 24 || binary.BigEndian.Uint32(rec[8:]) != 0 || binary.BigEndian.Uint32(rec[20:]) != 0 {
		return rec, errRejected
	}
	return rec[24:], nil
}

// exportList calls MOUNT EXPORT and decodes the directory names.
func (r *rawConn) exportList() ([]string, error) {
	res, err := r.call(100005, 3, 5, nil)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for {
		if len(res) < 4 {
			return nil, errors.New("short export list")
		}
		follows := binary.BigEndian.Uint32(res)
		res = res[4:]
		if follows == 0 {
			return dirs, nil
		}
		n := int(binary.BigEndian.Uint32(res))
		res = res[4:]
		dirs = append(dirs, string(res[:n]))
		res = res[(n+3)&^3:]
		for binary.BigEndian.Uint32(res) == 1 { // groups
			n := int(binary.BigEndian.Uint32(res[4:]))
			res = res[8+(n+3)&^3:]
		}
		res = res[4:]
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
