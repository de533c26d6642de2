// Package identity says which mesh node a connection comes from. The mesh
// source address of a packet is authenticated by the tunnel (a peer's
// packets are only accepted from its own mesh address), so nfsd trusts the
// address, never AUTH_SYS credentials: the address is looked up in the
// current netmap, and a source outside the mesh prefix, or not the address
// of a node in the netmap (unknown, or removed), is refused.
//
// A Watcher keeps the current netmap's Table, following the registry's
// netmap long poll with the node's credentials as tunnelmesh-meshdns does;
// a node removed from the mesh is gone from the Table as soon as the
// registry's answer arrives (the long poll answers at once on a change).
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// Errors of Lookup.
var (
	ErrNoNetmap    = errors.New("no netmap yet")
	ErrOutsideMesh = errors.New("source outside the mesh prefix")
	ErrUnknownNode = errors.New("source is not a node of the mesh")
)

// Node is a mesh node as nfsd knows it.
type Node struct {
	ID   string
	Name string
	Tags []string // lowercase, without a "tag:" prefix
	IP   netip.Addr
}

// HasTag reports whether n carries tag.
func (n *Node) HasTag(tag string) bool { return slices.Contains(n.Tags, tag) }

// Table is one netmap's view: the mesh prefix, every node by address, and
// the policy's nfs grants.
type Table struct {
	Version uint64
	Prefix  netip.Prefix
	Self    Node
	// NFS is the policy's nfs grants from this node's filter; nil when the
	// policy has no nfs section.
	NFS *api.NFSGrants
	// Publishing says whether this node publishes the nfs service
	// (--advertise-nfs): the registry sends the policy's nfs grants only
	// to a node that does.
	Publishing bool
	byIP       map[netip.Addr]*Node
}

// FromNetmap builds the Table of nm.
func FromNetmap(nm *api.Netmap) *Table {
	t := &Table{Version: nm.Version, Prefix: nm.MeshCIDR, byIP: make(map[netip.Addr]*Node, len(nm.Peers)+1)}
	add := func(n api.Node) *Node {
		if !n.IP.IsValid() {
			return nil
		}
		v := &Node{ID: n.ID, Name: n.Name, IP: n.IP.Unmap()}
		for _, tag := range n.Tags { // the registry may keep a "tag:" prefix
			v.Tags = append(v.Tags, strings.ToLower(strings.TrimPrefix(tag, "tag:")))
		}
		t.byIP[v.IP] = v
		return v
	}
	if nm.Filter != nil {
		t.NFS = nm.Filter.NFS
	}
	t.Publishing = slices.ContainsFunc(nm.Self.Services, func(s api.Service) bool { return s.Name == api.ServiceNFS })
	if s := add(nm.Self); s != nil {
		t.Self = *s
	}
	for _, p := range nm.Peers {
		add(p)
	}
	return t
}

// Lookup returns the node whose mesh address is a.
func (t *Table) Lookup(a netip.Addr) (*Node, error) {
	if t == nil {
		return nil, ErrNoNetmap
	}
	a = a.Unmap()
	if !t.Prefix.Contains(a) {
		return nil, fmt.Errorf("%s: %w %s", a, ErrOutsideMesh, t.Prefix)
	}
	n, ok := t.byIP[a]
	if !ok {
		return nil, fmt.Errorf("%s: %w", a, ErrUnknownNode)
	}
	return n, nil
}

// AddrOf returns the IP of a connection's remote address.
func AddrOf(addr net.Addr) (netip.Addr, bool) {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap(), true
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// requestTimeout bounds one watch request: the long poll plus slack.
const requestTimeout = api.DefaultWatchWait + 15*time.Second

// Watcher holds the current Table.
type Watcher struct {
	cur atomic.Pointer[Table]

	mu    sync.Mutex // guards subs
	subs  []func(*Table)
	ready chan struct{} // closed at the first Table
	once  sync.Once
}

// NewWatcher returns a Watcher with no Table yet.
func NewWatcher() *Watcher { return &Watcher{ready: make(chan struct{})} }

// Current returns the current Table, nil before the first netmap.
func (w *Watcher) Current() *Table { return w.cur.Load() }

// Ready is closed when the first Table is in.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Subscribe adds fn, called with every new Table after it is current.
func (w *Watcher) Subscribe(fn func(*Table)) {
	w.mu.Lock()
	w.subs = append(w.subs, fn)
	w.mu.Unlock()
}

// Apply makes nm's Table current and tells the subscribers.
func (w *Watcher) Apply(nm *api.Netmap) error {
	t := FromNetmap(nm)
	w.cur.Store(t)
	w.once.Do(func() { close(w.ready) })
	w.mu.Lock()
	subs := slices.Clone(w.subs)
	w.mu.Unlock()
	for _, fn := range subs {
		fn(t)
	}
	return nil
}

// Run watches the registry with creds until ctx ends, applying every
// netmap. It keeps the last Table while the registry is unreachable.
func (w *Watcher) Run(ctx context.Context, creds regclient.Credentials, log *slog.Logger) error {
	c, err := regclient.New(creds)
	if err != nil {
		return fmt.Errorf("watch netmap: %w", err)
	}
	c.HTTP.Timeout = requestTimeout
	defer c.HTTP.CloseIdleConnections()
	var failing bool
	err = c.Watch(ctx, 0, func(nm *api.Netmap) error {
		if failing {
			log.Info("registry reachable again", "netmap_version", nm.Version)
			failing = false
		}
		return w.Apply(nm)
	}, func(err error) {
		if !failing {
			log.Warn("registry unreachable, keeping the last netmap", "err", err)
			failing = true
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("watch netmap: %w", err)
	}
	return nil
}
