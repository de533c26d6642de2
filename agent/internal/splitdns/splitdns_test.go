package splitdns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeRunner records resolvectl calls and fails those whose verb is in fail.
type fakeRunner struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]bool
}

func (f *fakeRunner) run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	if len(args) > 0 && f.fail[args[0]] {
		return []byte("Failed to " + args[0] + ": boom\n"), errors.New("exit status 1")
	}
	return nil, nil
}

func (f *fakeRunner) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

var (
	mesh10 = netip.MustParsePrefix("10.0.0.0/8")
	srvA   = netip.MustParseAddr("10.0.0.3")
	srvB   = netip.MustParseAddr("10.0.0.4")
	srvC   = netip.MustParseAddr("10.0.0.5")
	srvD   = netip.MustParseAddr("10.0.0.6")
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		err  bool
	}{
		{"", ModeAuto, false},
		{"auto", ModeAuto, false},
		{"resolved", ModeResolved, false},
		{"resolvconf", ModeResolvConf, false},
		{"off", ModeOff, false},
		{"false", "", true},
		{"Resolved", "", true},
	} {
		got, err := ParseMode(tc.in)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestConfigNormalize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Config
		want Config
		err  string
	}{
		{name: "plain", in: Config{Zone: "mesh", Servers: []netip.Addr{srvA}, MeshCIDR: mesh10},
			want: Config{Zone: "mesh", Servers: []netip.Addr{srvA}, MeshCIDR: mesh10}},
		{name: "case, dot, duplicates, mapped", in: Config{Zone: "Mesh.Example.", Servers: []netip.Addr{srvA, srvB, netip.MustParseAddr("::ffff:10.0.0.3")}},
			want: Config{Zone: "mesh.example", Servers: []netip.Addr{srvA, srvB}}},
		{name: "ipv6 server", in: Config{Zone: "mesh", Servers: []netip.Addr{netip.MustParseAddr("fd00::53")}},
			want: Config{Zone: "mesh", Servers: []netip.Addr{netip.MustParseAddr("fd00::53")}}},
		{name: "no dns", in: Config{MeshCIDR: mesh10}, want: Config{MeshCIDR: mesh10}},
		{name: "zone without servers", in: Config{Zone: "mesh"}, want: Config{Zone: "mesh"}},
		{name: "servers without zone", in: Config{Servers: []netip.Addr{srvA}}, err: "dns zone: empty while servers are set"},
		{name: "bad label", in: Config{Zone: "me_sh", Servers: []netip.Addr{srvA}}, err: `dns zone "me_sh": label "me_sh": only letters, digits and hyphens`},
		{name: "empty label", in: Config{Zone: "a..b", Servers: []netip.Addr{srvA}}, err: `dns zone "a..b": label "": must be 1 to 63 characters`},
		{name: "hyphen", in: Config{Zone: "-mesh", Servers: []netip.Addr{srvA}}, err: `dns zone "-mesh": label "-mesh": starts or ends with a hyphen`},
		{name: "long label", in: Config{Zone: strings.Repeat("a", 64), Servers: []netip.Addr{srvA}}, err: "must be 1 to 63 characters"},
		{name: "invalid server", in: Config{Zone: "mesh", Servers: []netip.Addr{{}}}, err: "dns servers: invalid address"},
		{name: "unspecified", in: Config{Zone: "mesh", Servers: []netip.Addr{netip.IPv4Unspecified()}}, err: "dns servers: 0.0.0.0: not a unicast address"},
		{name: "zoned", in: Config{Zone: "mesh", Servers: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}}, err: "dns servers: fe80::1%eth0: address with zone"},
		{name: "host bits", in: Config{Zone: "mesh", Servers: []netip.Addr{srvA}, MeshCIDR: netip.MustParsePrefix("10.1.0.0/8")}, err: "dns mesh cidr: mesh cidr 10.1.0.0/8: host bits set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.normalize()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("normalize() error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !got.equal(tc.want) {
				t.Fatalf("normalize() = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestRouteDomains(t *testing.T) {
	c := Config{Zone: "mesh", MeshCIDR: netip.MustParsePrefix("100.64.0.0/10")}
	d := c.routeDomains()
	if len(d) != 65 || d[0] != "mesh" || d[1] != "64.100.in-addr.arpa" || d[64] != "127.100.in-addr.arpa" {
		t.Errorf("routeDomains() = %d names, %q %q ... %q", len(d), d[0], d[1], d[len(d)-1])
	}
	if d := (Config{Zone: "mesh"}).routeDomains(); !slices.Equal(d, []string{"mesh"}) {
		t.Errorf("routeDomains(no cidr) = %q, want [mesh]", d)
	}
}

func TestDetect(t *testing.T) {
	type env struct {
		resolvedDir bool
		statusFails bool
		resolvConf  string // content; "->target" makes a symlink
		nsswitch    string
	}
	for _, tc := range []struct {
		name string
		env  env
		want Mode
		why  string
	}{
		{"no resolved", env{resolvConf: "nameserver 127.0.0.53\n"}, ModeResolvConf, "not running"},
		{"resolvectl fails", env{resolvedDir: true, statusFails: true, resolvConf: "nameserver 127.0.0.53\n"}, ModeResolvConf, "does not answer"},
		{"stub listener", env{resolvedDir: true, resolvConf: "# managed\nnameserver 127.0.0.53\noptions edns0\n"}, ModeResolved, "stub listener 127.0.0.53"},
		{"stub link", env{resolvedDir: true, resolvConf: "->../run/systemd/resolve/stub-resolv.conf"}, ModeResolved, "links to resolved's stub"},
		{"nss-resolve", env{resolvedDir: true, resolvConf: "nameserver 192.0.2.1\n", nsswitch: "passwd: files\nhosts: files resolve [!UNAVAIL=return] dns\n"}, ModeResolved, "nss-resolve"},
		{"resolved unused", env{resolvedDir: true, resolvConf: "nameserver 192.0.2.1\n", nsswitch: "hosts: files dns\n"}, ModeResolvConf, "does not use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{
				ResolvConf:  filepath.Join(dir, "resolv.conf"),
				resolvedDir: filepath.Join(dir, "run-resolve"),
				nsswitch:    filepath.Join(dir, "nsswitch.conf"),
			}
			if tc.env.resolvedDir {
				must(t, os.Mkdir(opts.resolvedDir, 0o755))
			}
			fr := &fakeRunner{fail: map[string]bool{"status": tc.env.statusFails}}
			opts.Runner = fr.run
			if target, ok := strings.CutPrefix(tc.env.resolvConf, "->"); ok {
				must(t, os.Symlink(target, opts.ResolvConf))
			} else {
				must(t, os.WriteFile(opts.ResolvConf, []byte(tc.env.resolvConf), 0o644))
			}
			if tc.env.nsswitch != "" {
				must(t, os.WriteFile(opts.nsswitch, []byte(tc.env.nsswitch), 0o644))
			}
			got, why := detect(opts)
			if got != tc.want || !strings.Contains(why, tc.why) {
				t.Errorf("detect() = %q (%s), want %q (%s)", got, why, tc.want, tc.why)
			}
			if calls := fr.take(); tc.env.resolvedDir && !slices.Equal(calls, []string{"resolvectl status"}) {
				t.Errorf("detect ran %q, want [resolvectl status]", calls)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts Options
		err  string
	}{
		{"bad mode", Options{Mode: "dnsmasq", Link: "tm0"}, `dns mode "dnsmasq"`},
		{"no link", Options{Mode: ModeResolved}, "link: required"},
		{"no state dir", Options{Mode: ModeResolvConf, Link: "tm0", ResolvConf: filepath.Join(dir, "r")}, "state dir: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("New() = %v, %v; want error %q", m, err, tc.err)
			}
		})
	}
}

// TestModeOff checks that off touches neither resolvectl nor the file.
func TestModeOff(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	must(t, os.WriteFile(rc, []byte("nameserver 192.0.2.1\n"), 0o644))
	fr := &fakeRunner{}
	m, err := New(Options{Mode: ModeOff, ResolvConf: rc, StateDir: filepath.Join(dir, "state"), Runner: fr.run})
	if err != nil {
		t.Fatal(err)
	}
	if m.Mode() != ModeOff {
		t.Errorf("Mode() = %q, want off", m.Mode())
	}
	must(t, m.Apply(Config{Zone: "mesh", Servers: []netip.Addr{srvA}, MeshCIDR: mesh10}))
	must(t, m.Close())
	if b, _ := os.ReadFile(rc); string(b) != "nameserver 192.0.2.1\n" {
		t.Errorf("resolv.conf = %q, want it untouched", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir created in mode off: %v", err)
	}
	if c := fr.take(); len(c) != 0 {
		t.Errorf("mode off ran %q", c)
	}
}

func TestApplyAfterClose(t *testing.T) {
	fr := &fakeRunner{}
	m := newResolved(t, fr, nil)
	must(t, m.Close())
	must(t, m.Close())
	if err := m.Apply(Config{Zone: "mesh", Servers: []netip.Addr{srvA}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v, want ErrClosed", err)
	}
	if c := fr.take(); len(c) != 0 {
		t.Errorf("ran %q after Close", c)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// links is a fake interface table for resolved mode.
type links struct {
	mu  sync.Mutex
	idx map[string]int
}

func (l *links) set(name string, idx int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if idx == 0 {
		delete(l.idx, name)
		return
	}
	l.idx[name] = idx
}

func (l *links) index(name string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i, ok := l.idx[name]; ok {
		return i, nil
	}
	return 0, fmt.Errorf("route ip+net: no such network interface")
}
