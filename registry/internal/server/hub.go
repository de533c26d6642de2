package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/metrics"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// snapshot is the mesh at one version. It is never modified after it is
// published.
type snapshot struct {
	version uint64
	byID    map[string]*entry
	order   []*entry // by name
	online  int
	// psk is the mesh PSK state the netmaps carry (and joins hand out).
	psk api.MeshPSK
	// psks, relays and registries are what the snapshot was built from
	// besides the nodes, kept for a rebuild after a change of one node.
	psks       store.PSKs
	relays     []api.Relay
	registries []string
	// head is the netmap JSON up to "self": version, mesh ID and prefix, PSK.
	head []byte
	// tail is the JSON of dns, relays and registries, after "peers".
	tail []byte
	// peers is every node's JSON, comma-separated, in order.
	peers []byte
	// gz holds peers compressed in chunks, built on first use.
	gz gzChunks
	// changed is closed when a newer snapshot replaces this one.
	changed chan struct{}

	// hist is the bounded history of the changes that led here, oldest
	// first, the last one ending at version (see delta.go).
	hist []*change
	// view is the policy's ViewVersion when the snapshot was built;
	// viewSince the version since which it has not changed.
	view, viewSince uint64
	// deltas caches, by base version, the peers changed since then.
	deltas sync.Map // uint64 -> *peerChanges
}

type entry struct {
	node       api.Node
	stored     store.Node
	secretHash []byte
	json       []byte // node's JSON as peers see it
	start, end int    // span of json in snapshot.peers
	pos        int    // index in snapshot.order
	// since is the version since which node (and json) did not change.
	since uint64

	// filter is the node's compiled filter (nil without a policy), shared
	// with the previous snapshot's entry while it is the same.
	filter *filterDoc
}

// filterDoc is a node's compiled filter, encoded on first use.
type filterDoc struct {
	filter *api.Filter
	since  uint64 // the version since which the filter did not change
	once   sync.Once
	json   []byte // `,"filter":{...}`; nil for a nil filter
}

// filterJSON returns `,"filter":{...}` for the node's compiled filter
// (nothing when the policy has none for it).
func (e *entry) filterJSON() []byte {
	d := e.filter
	if d == nil {
		return nil
	}
	d.once.Do(func() {
		if d.filter != nil {
			d.json = appendJSON([]byte(`,"filter":`), d.filter)
		}
	})
	return d.json
}

// hub publishes snapshots.
type hub struct {
	cur atomic.Pointer[snapshot]
	mu  sync.Mutex // serialises refresh
}

func (h *hub) init() {
	h.cur.Store(&snapshot{byID: map[string]*entry{}, changed: make(chan struct{})})
}

func (h *hub) current() *snapshot { return h.cur.Load() }

// refresh reloads the snapshot from the store unless the published one is
// already at least at version min (so concurrent changes share a reload).
//
// It runs to completion even when ctx is cancelled (a client that hangs up
// right after its change was committed): the snapshot must never lag behind
// the store, or a joined node would be unknown until the next change.
func (s *Server) refresh(ctx context.Context, min uint64) error {
	return s.refreshChange(ctx, store.Change{Version: min})
}

// refreshChange is refresh after change c. When c touched one node's
// record only (c.Node) and the published snapshot is at the version right
// before it, only that node is read from the store (store.NodeReader) and
// every other node, the PSKs, relays, registries and the policy are kept;
// when a change in between was missed, or another one was made meanwhile,
// everything is reloaded, the policy included.
func (s *Server) refreshChange(ctx context.Context, c store.Change) error {
	ctx = context.WithoutCancel(ctx)
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	old := s.hub.current()
	if c.Version != 0 && old.version >= c.Version {
		return nil
	}
	if nr, ok := s.st.(store.NodeReader); ok && c.Node != "" && old.version != 0 && old.version == c.Version-1 {
		done, err := s.reloadNode(ctx, nr, old, c)
		if err != nil {
			return fmt.Errorf("refresh netmap: %w", err)
		}
		if done {
			return nil
		}
	}
	v, nodes, err := s.st.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("refresh netmap: %w", err)
	}
	if v <= old.version {
		return nil
	}
	// A policy another replica applied is stored before the version bump
	// that announces it, so the newest stored policy read now is at least
	// as new as version v.
	s.reloadPolicy()
	psks, err := s.st.PSKs(ctx)
	if err != nil {
		return fmt.Errorf("refresh netmap: %w", err)
	}
	relays := s.set.Relays
	if rs, ok := s.st.(store.Relays); ok {
		registered, err := rs.Relays(ctx)
		if err != nil {
			return fmt.Errorf("refresh netmap: %w", err)
		}
		relays = mergeRelays(s.set.Relays, registered)
	}
	var registries []string
	if rs, ok := s.st.(store.Registries); ok {
		if registries, err = rs.Registries(ctx); err != nil {
			return fmt.Errorf("refresh netmap: %w", err)
		}
	}
	if err := s.publish(old, v, nodes, psks, relays, registries); err != nil {
		return fmt.Errorf("refresh netmap: %w", err)
	}
	s.met.NetmapReloads.WithLabelValues(metrics.ReloadAll).Inc()
	return nil
}

// reloadNode publishes old with c.Node's record read again, when the store
// is still at c.Version; it reports false (nothing done) when it is not.
func (s *Server) reloadNode(ctx context.Context, nr store.NodeReader, old *snapshot, c store.Change) (bool, error) {
	v, n, err := nr.Node(ctx, c.Node)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if v != c.Version {
		return false, nil
	}
	nodes := make([]store.Node, 0, len(old.order)+1)
	for _, e := range old.order {
		if e.node.ID != c.Node {
			nodes = append(nodes, e.stored)
		}
	}
	if found {
		nodes = append(nodes, n)
	}
	if err := s.publish(old, v, nodes, old.psks, old.relays, old.registries); err != nil {
		return false, err
	}
	s.met.NetmapReloads.WithLabelValues(metrics.ReloadNode).Inc()
	return true, nil
}

// publish builds the snapshot at version v and makes it current in place
// of old, waking old's watchers. The caller holds hub.mu.
func (s *Server) publish(old *snapshot, v uint64, nodes []store.Node, psks store.PSKs, relays []api.Relay, registries []string) error {
	snap, err := s.buildSnapshot(v, nodes, psks, relays, registries)
	if err != nil {
		return err
	}
	s.hub.cur.Store(snap)
	close(old.changed)
	if s.set.OnRefresh != nil {
		s.set.OnRefresh()
	}
	s.met.Nodes.Set(float64(len(snap.order)))
	s.met.NodesOnline.Set(float64(snap.online))
	s.met.NetmapVersion.Set(float64(v))
	return nil
}

// mergeRelays is the configured relays followed by the other replicas'
// registered ones (a registered relay whose ID is configured is the
// configured one).
func mergeRelays(configured, registered []api.Relay) []api.Relay {
	out := slices.Clone(configured)
	for _, r := range registered {
		if !slices.ContainsFunc(out, func(c api.Relay) bool { return c.ID == r.ID }) {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) buildSnapshot(v uint64, nodes []store.Node, psks store.PSKs, relays []api.Relay, registries []string) (*snapshot, error) {
	now := s.now()
	prev := s.hub.current()
	snap := &snapshot{
		version: v,
		psk:     api.MeshPSK{Current: psks.Current},
		psks:    psks, relays: relays, registries: registries,
		byID:    make(map[string]*entry, len(nodes)),
		order:   make([]*entry, 0, len(nodes)),
		changed: make(chan struct{}),
	}
	// Peers are listed by name, then ID, in Go's byte order whatever the
	// store's collation, so that a client applying deltas
	// (api.ApplyDelta) keeps the same order.
	slices.SortFunc(nodes, func(a, b store.Node) int {
		if c := cmp.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	// Every netmap call takes seenMu (markSeen): it is held for the
	// last-seen times only, not for the encoding below.
	online := make([]bool, len(nodes))
	s.seenMu.Lock()
	for i, n := range nodes {
		if t, ok := s.seen[n.ID]; (!ok || n.LastSeen.After(t)) && !n.LastSeen.IsZero() {
			s.seen[n.ID] = n.LastSeen
		}
		online[i] = s.isOnlineLocked(n.ID, now)
	}
	s.seenMu.Unlock()
	for i, n := range nodes {
		online := online[i]
		if online {
			snap.online++
		}
		// Reuse the previous encoding when nothing about the node changed.
		// The last-seen time of a node online is the one it had when it
		// came online (or last changed otherwise): heartbeats of every
		// node must not change every netmap, and so every delta.
		if old := prev.byID[n.ID]; old != nil && old.node.Online == online && sameNode(&old.stored, &n, online) {
			e := &entry{stored: n, secretHash: n.SecretHash, node: old.node, json: old.json, since: old.since}
			snap.byID[n.ID] = e
			snap.order = append(snap.order, e)
			continue
		}
		// The netmap shows the stored last-seen time (heartbeats, endpoint
		// reports, joins), so that polls alone do not change it; see above
		// for a node online.
		e := &entry{stored: n, secretHash: n.SecretHash, node: apiNode(n, s.set.HomeRelay), since: v}
		e.node.Online = online
		b, err := json.Marshal(&e.node)
		if err != nil {
			return nil, err
		}
		e.json = b
		snap.byID[n.ID] = e
		snap.order = append(snap.order, e)
	}

	// All peers' JSON, comma-separated, in name order; each entry knows its
	// span, so a node's peer list is this minus its own span.
	size := 0
	for _, e := range snap.order {
		size += len(e.json) + 1
	}
	all := make([]byte, 0, size)
	for i, e := range snap.order {
		if i > 0 {
			all = append(all, ',')
		}
		e.pos = i
		e.start = len(all)
		all = append(all, e.json...)
		e.end = len(all)
	}
	snap.peers = all

	mesh := s.set.Mesh
	head := []byte(`{"version":` + strconv.FormatUint(v, 10) + `,"mesh_id":`)
	head = appendJSON(head, mesh.ID)
	head = append(head, `,"mesh_cidr":`...)
	head = appendJSON(head, mesh.CIDR)
	// The previous PSK is listed while it is accepted; a netmap fetched
	// after that no longer carries it (nodes also drop it on their own at
	// PreviousUntil).
	if psks.Previous != nil && now.Before(psks.PreviousUntil) {
		snap.psk.Previous, snap.psk.PreviousUntil = psks.Previous, psks.PreviousUntil
	}
	head = append(head, `,"psk":`...)
	head = appendJSON(head, &snap.psk)
	snap.head = append(head, `,"self":`...)

	tail := []byte(`,"dns":`)
	tail = appendJSON(tail, api.DNSConfig{Zone: s.set.DNSZone, Servers: dnsServers(s.set.DNSServers, snap.order)})
	if len(relays) > 0 {
		tail = append(tail, `,"relays":`...)
		tail = appendJSON(tail, relays)
	}
	if len(registries) > 0 {
		tail = append(tail, `,"registries":`...)
		tail = appendJSON(tail, registries)
	}
	snap.tail = tail
	// Before publishing: the policy compiles against these nodes.
	s.policySetNodes(snap)
	s.setFilters(snap, prev)
	s.recordChanges(snap, prev)
	return snap, nil
}

// setFilters gives each node its compiled filter, keeping the previous
// snapshot's (and its encoding) while the policy's is equal to it.
func (s *Server) setFilters(snap, prev *snapshot) {
	pol := s.set.Policy
	if pol == nil {
		return
	}
	for _, e := range snap.order {
		f := pol.Filter(&e.node)
		if old := prev.byID[e.node.ID]; old != nil && old.filter != nil && (old.filter.filter == f || reflect.DeepEqual(old.filter.filter, f)) {
			e.filter = old.filter
			continue
		}
		e.filter = &filterDoc{filter: f, since: snap.version}
	}
}

// sameNode reports whether a and b are the same record, ignoring the
// last-seen time when ignoreSeen is set.
func sameNode(a, b *store.Node, ignoreSeen bool) bool {
	return a.ID == b.ID && a.Name == b.Name && a.IP == b.IP && a.PublicKey == b.PublicKey &&
		bytes.Equal(a.SecretHash, b.SecretHash) && slices.Equal(a.Endpoints, b.Endpoints) &&
		a.SSH().Equal(b.SSH()) && a.HomeRelay == b.HomeRelay &&
		slices.Equal(a.Tags, b.Tags) && slices.Equal(a.Services, b.Services) && (ignoreSeen || a.LastSeen.Equal(b.LastSeen))
}

func appendJSON(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		// Only called with types that always marshal.
		panic("server: marshal " + err.Error())
	}
	return append(b, j...)
}

// HasNodeKey reports whether k is the key of a current mesh node.
func (s *Server) HasNodeKey(k nodekey.PublicKey) bool {
	for _, e := range s.hub.current().order {
		if e.node.PublicKey == k {
			return true
		}
	}
	return false
}

func apiNode(n store.Node, homeRelay string) api.Node {
	if n.HomeRelay != "" {
		homeRelay = n.HomeRelay
	}
	return api.Node{
		HomeRelay:     homeRelay,
		ID:            n.ID,
		Name:          n.Name,
		IP:            n.IP,
		PublicKey:     n.PublicKey,
		Endpoints:     n.Endpoints,
		SSHEndpoint:   n.SSHEndpoint,
		SSHHostKey:    n.SSHHostKey,
		SSHUser:       n.SSHUser,
		SSHPacketPort: n.SSHPacketPort,
		Tags:          n.Tags,
		Services:      n.Services,
		LastSeen:      n.LastSeen.UTC(),
	}
}

// netmapParts returns self's netmap as JSON pieces that concatenate to the
// same document as json.Marshal(api.Netmap{...}), and their total length.
// When self may see every peer (always without a policy, and with policies
// that filter packets rather than hide peers) the peer list is two slices
// of the snapshot's pre-encoded peers around self's own span, and the
// filter's JSON is encoded once per node and snapshot: answering a watcher
// copies and encodes nothing, so one change fans out to many watchers
// cheaply.
func (s *Server) netmapParts(snap *snapshot, self *entry) ([][]byte, int) {
	pol := s.set.Policy
	var before, sep, after []byte
	if pol == nil || allVisible(pol, snap, self) {
		before = snap.peers[:max(self.start-1, 0)]
		if self.end+1 < len(snap.peers) {
			after = snap.peers[self.end+1:]
		}
		if len(before) > 0 && len(after) > 0 {
			sep = comma
		}
	} else {
		before = visiblePeers(pol, snap, self)
	}
	parts := [][]byte{snap.head, self.json, peersOpen, before, sep, after, peersClose, snap.tail, self.filterJSON(), docClose}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return parts, n
}

func allVisible(pol Policy, snap *snapshot, self *entry) bool {
	for _, e := range snap.order {
		if e != self && !pol.Visible(&self.node, &e.node) {
			return false
		}
	}
	return true
}

func visiblePeers(pol Policy, snap *snapshot, self *entry) []byte {
	b := make([]byte, 0, len(snap.peers))
	for _, e := range snap.order {
		if e == self || !pol.Visible(&self.node, &e.node) {
			continue
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = append(b, e.json...)
	}
	return b
}

var (
	peersOpen  = []byte(`,"peers":[`)
	peersClose = []byte(`]`)
	docClose   = []byte(`}`)
	comma      = []byte(`,`)
)

// render returns self's netmap as one document.
func (s *Server) render(snap *snapshot, self *entry) []byte {
	parts, n := s.netmapParts(snap, self)
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
