package splitdns

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// newResolved returns a resolved-mode Manager on link tm0 (index 5 unless
// lk says otherwise) with fr as its resolvectl.
func newResolved(t *testing.T, fr *fakeRunner, lk *links) *Manager {
	t.Helper()
	if lk == nil {
		lk = &links{idx: map[string]int{"tm0": 5}}
	}
	m, err := New(Options{Mode: ModeResolved, Link: "tm0", Runner: fr.run, linkIndex: lk.index})
	if err != nil {
		t.Fatal(err)
	}
	if m.Mode() != ModeResolved {
		t.Fatalf("Mode() = %q, want resolved", m.Mode())
	}
	return m
}

func applyCalls(servers, domains string) []string {
	return []string{
		"resolvectl default-route tm0 false",
		"resolvectl domain tm0 " + domains,
		"resolvectl dns tm0 " + servers,
		"resolvectl dnssec tm0 no",
		"resolvectl dnsovertls tm0 no",
	}
}

func TestResolved(t *testing.T) {
	cfg1 := Config{Zone: "mesh", Servers: []netip.Addr{srvA}, MeshCIDR: mesh10}
	cfg2 := Config{Zone: "mesh", Servers: []netip.Addr{srvA, srvB}, MeshCIDR: mesh10}
	slash23 := Config{Zone: "Corp.Mesh.", Servers: []netip.Addr{srvA}, MeshCIDR: netip.MustParsePrefix("10.1.2.0/23")}
	revert := []string{"resolvectl revert tm0"}
	type step struct {
		do   string // apply, close or link (set the link's index; 0 removes it)
		cfg  Config
		idx  int
		fail []string // resolvectl verbs that fail from this step on
		want []string // resolvectl calls made
		err  string   // wanted error substring
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"apply, again, close", []step{
			{do: "apply", cfg: cfg1, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
			{do: "apply", cfg: cfg1},
			{do: "close", want: revert},
			{do: "close"},
		}},
		{"servers change", []step{
			{do: "apply", cfg: cfg1, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
			{do: "apply", cfg: cfg2, want: applyCalls("10.0.0.3 10.0.0.4", "~mesh ~10.in-addr.arpa")},
			{do: "apply", cfg: cfg1, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
			{do: "close", want: revert},
		}},
		{"zone normalised, several reverse zones", []step{
			{do: "apply", cfg: slash23, want: applyCalls("10.0.0.3", "~corp.mesh ~2.1.10.in-addr.arpa ~3.1.10.in-addr.arpa")},
			{do: "close", want: revert},
		}},
		{"no cidr, no reverse zones", []step{
			{do: "apply", cfg: Config{Zone: "mesh", Servers: []netip.Addr{srvC}}, want: applyCalls("10.0.0.5", "~mesh")},
		}},
		{"servers removed reverts", []step{
			{do: "apply", cfg: cfg1, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
			{do: "apply", cfg: Config{Zone: "mesh", MeshCIDR: mesh10}, want: revert},
			{do: "apply", cfg: Config{}},
			{do: "close"},
		}},
		{"link recreated", []step{
			{do: "apply", cfg: cfg1, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
			{do: "link", idx: 9},
			{do: "apply", cfg: cfg1, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
		}},
		{"link missing", []step{
			{do: "link", idx: 0},
			{do: "apply", cfg: cfg1, err: "link tm0: route ip+net: no such network interface"},
			{do: "close"},
		}},
		{"invalid config changes nothing", []step{
			{do: "apply", cfg: cfg1, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
			{do: "apply", cfg: Config{Zone: "me sh", Servers: []netip.Addr{srvB}}, err: `dns zone "me sh"`},
			{do: "apply", cfg: cfg1},
		}},
		{"failed step reverts the link", []step{
			{do: "apply", cfg: cfg1, fail: []string{"dns"}, err: "resolvectl dns tm0 10.0.0.3: exit status 1: Failed to dns: boom",
				want: append(applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")[:3], revert...)},
			{do: "close"},
		}},
		{"failed step after a good apply", []step{
			{do: "apply", cfg: cfg1, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
			{do: "apply", cfg: cfg2, fail: []string{"domain"}, err: "resolvectl domain tm0",
				want: append(applyCalls("10.0.0.3 10.0.0.4", "~mesh ~10.in-addr.arpa")[:2], revert...)},
			{do: "apply", cfg: cfg1, fail: []string{}, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
		}},
		{"optional settings may fail", []step{
			{do: "apply", cfg: cfg1, fail: []string{"dnssec", "dnsovertls"}, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
			{do: "apply", cfg: cfg1},
			{do: "close", want: revert},
		}},
		{"revert fails, link gone", []step{
			{do: "apply", cfg: cfg1, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
			{do: "link", idx: 0},
			{do: "close", fail: []string{"revert"}, want: revert},
		}},
		{"revert fails, link there", []step{
			{do: "apply", cfg: cfg1, want: applyCalls("10.0.0.3", "~mesh ~10.in-addr.arpa")},
			{do: "apply", cfg: Config{}, fail: []string{"revert"}, want: revert, err: "resolvectl revert tm0: exit status 1"},
			{do: "close", want: revert, err: "splitdns: close: resolvectl revert tm0"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := &fakeRunner{}
			lk := &links{idx: map[string]int{"tm0": 5}}
			m := newResolved(t, fr, lk)
			for i, s := range tc.steps {
				if s.fail != nil {
					fr.fail = map[string]bool{}
					for _, v := range s.fail {
						fr.fail[v] = true
					}
				}
				var err error
				switch s.do {
				case "apply":
					err = m.Apply(s.cfg)
				case "close":
					err = m.Close()
				case "link":
					lk.set("tm0", s.idx)
				}
				if s.err == "" && err != nil || s.err != "" && (err == nil || !strings.Contains(err.Error(), s.err)) {
					t.Fatalf("step %d %s: error %v, want %q", i, s.do, err, s.err)
				}
				if got := fr.take(); !slices.Equal(got, s.want) {
					t.Fatalf("step %d %s: resolvectl calls\n got  %q\n want %q", i, s.do, got, s.want)
				}
			}
		})
	}
}

// TestResolvedDefaultCIDR checks the command line for the default mesh
// prefix: 64 reverse zones, as meshdns serves them.
func TestResolvedDefaultCIDR(t *testing.T) {
	fr := &fakeRunner{}
	m := newResolved(t, fr, nil)
	must(t, m.Apply(Config{Zone: "mesh", Servers: []netip.Addr{netip.MustParseAddr("100.64.0.3")}, MeshCIDR: netip.MustParsePrefix("100.64.0.0/10")}))
	calls := fr.take()
	if len(calls) != 5 {
		t.Fatalf("calls = %q", calls)
	}
	f := strings.Fields(calls[1])
	if len(f) != 3+65 || f[3] != "~mesh" || f[4] != "~64.100.in-addr.arpa" || f[67] != "~127.100.in-addr.arpa" {
		t.Errorf("domain call = %q", calls[1])
	}
}
