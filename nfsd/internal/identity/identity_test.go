package identity

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/testkit/registrytest"
)

func TestLookup(t *testing.T) {
	tb := FromNetmap(&api.Netmap{Version: 4, MeshCIDR: netip.MustParsePrefix("100.64.0.0/10"),
		Self: api.Node{Name: "nfs", IP: netip.MustParseAddr("100.64.0.1")},
		Peers: []api.Node{
			{Name: "build1", IP: netip.MustParseAddr("100.64.0.2"), Tags: []string{"ci", "tag:Ops"}},
			{Name: "noaddr"},
		}})
	for _, tc := range []struct {
		addr, want string
		err        error
	}{
		{"100.64.0.1", "nfs", nil},
		{"100.64.0.2", "build1", nil},
		{"::ffff:100.64.0.2", "build1", nil},
		{"100.64.0.3", "", ErrUnknownNode},
		{"192.0.2.1", "", ErrOutsideMesh},
		{"127.0.0.1", "", ErrOutsideMesh},
		{"fd00::2", "", ErrOutsideMesh},
	} {
		n, err := tb.Lookup(netip.MustParseAddr(tc.addr))
		if !errors.Is(err, tc.err) || (err == nil && n.Name != tc.want) {
			t.Errorf("Lookup(%s) = %v, %v; want %q, %v", tc.addr, n, err, tc.want, tc.err)
		}
	}
	if n, _ := tb.Lookup(netip.MustParseAddr("100.64.0.2")); !n.HasTag("ci") || !n.HasTag("ops") || n.HasTag("web") {
		t.Errorf("build1 tags = %v", n.Tags)
	}
	var none *Table
	if _, err := none.Lookup(netip.MustParseAddr("100.64.0.1")); !errors.Is(err, ErrNoNetmap) {
		t.Errorf("Lookup before a netmap = %v, want ErrNoNetmap", err)
	}
	if a, ok := AddrOf(&net.TCPAddr{IP: net.ParseIP("100.64.0.2"), Port: 9}); !ok || a != netip.MustParseAddr("100.64.0.2") {
		t.Errorf("AddrOf = %v, %v", a, ok)
	}
}

func FuzzLookup(f *testing.F) {
	tb := FromNetmap(&api.Netmap{MeshCIDR: netip.MustParsePrefix("100.64.0.0/10"),
		Peers: []api.Node{{Name: "a", IP: netip.MustParseAddr("100.64.0.2")}}})
	f.Add([]byte{100, 64, 0, 2})
	f.Add([]byte{100, 64, 0, 3})
	f.Add(netip.MustParseAddr("::ffff:100.64.0.2").AsSlice())
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		n, err := tb.Lookup(a)
		if err == nil && (n.Name != "a" || a.Unmap() != netip.MustParseAddr("100.64.0.2")) {
			t.Fatalf("Lookup(%s) = %s", a, n.Name)
		}
	})
}

// TestWatcherFollowsRegistry: the watcher sees a node join and leave
// through the registry's long poll.
func TestWatcherFollowsRegistry(t *testing.T) {
	fake := registrytest.New(netip.Prefix{})
	defer fake.Close()
	key, _ := nodekey.Generate()
	creds, _, err := fake.AddNode("nfs", key)
	if err != nil {
		t.Fatal(err)
	}
	creds.Key = key
	w := NewWatcher()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, creds, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	<-w.Ready()
	if s := w.Current().Self; s.Name != "nfs" {
		t.Fatalf("Self = %+v", s)
	}
	key2, _ := nodekey.Generate()
	_, j, err := fake.AddNode("build1", key2)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "build1 in the table", func() bool { _, err := w.Current().Lookup(j.IP); return err == nil })
	fake.RemoveNode("build1")
	waitFor(t, "build1 gone", func() bool {
		_, err := w.Current().Lookup(j.IP)
		return errors.Is(err, ErrUnknownNode)
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTableGrants: the policy's nfs grants come with the node's filter;
// none without an nfs section.
func TestTableGrants(t *testing.T) {
	nm := &api.Netmap{MeshCIDR: netip.MustParsePrefix("100.64.0.0/10"), Filter: &api.Filter{Rules: []api.FilterRule{}}}
	if g := FromNetmap(nm).NFS; g != nil {
		t.Errorf("NFS of a filter without grants = %+v, want nil", g)
	}
	nm.Filter.NFS = &api.NFSGrants{Nodes: map[string]map[string]string{"build1": {"shared": api.NFSReadWrite}}}
	if got := FromNetmap(nm).NFS.Level("Build1", "shared"); got != api.NFSReadWrite {
		t.Errorf("Level(build1, shared) = %q, want rw", got)
	}
	if FromNetmap(nm).Publishing {
		t.Error("Publishing without the nfs service")
	}
	nm.Self.Services = []api.Service{{Name: api.ServiceNFS, Protocol: "tcp", Port: 2049}}
	if !FromNetmap(nm).Publishing {
		t.Error("not Publishing with the nfs service")
	}
}
