package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// snapshot is the mesh at one version. It is never modified after it is
// published.
type snapshot struct {
	version uint64
	byID    map[string]*entry
	order   []*entry // by name
	online  int
	// head is the netmap JSON up to "self": version, mesh ID and prefix.
	head []byte
	// tail is the JSON of dns and relays, after "peers".
	tail []byte
	// changed is closed when a newer snapshot replaces this one.
	changed chan struct{}
}

type entry struct {
	node       api.Node
	stored     store.Node
	secretHash []byte
	json       []byte // node's JSON as peers see it
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
func (s *Server) refresh(ctx context.Context, min uint64) error {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	old := s.hub.current()
	if min != 0 && old.version >= min {
		return nil
	}
	v, nodes, err := s.st.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("refresh netmap: %w", err)
	}
	if v <= old.version {
		return nil
	}
	snap, err := s.buildSnapshot(v, nodes)
	if err != nil {
		return fmt.Errorf("refresh netmap: %w", err)
	}
	s.hub.cur.Store(snap)
	close(old.changed)
	s.met.Nodes.Set(float64(len(snap.order)))
	s.met.NodesOnline.Set(float64(snap.online))
	s.met.NetmapVersion.Set(float64(v))
	return nil
}

func (s *Server) buildSnapshot(v uint64, nodes []store.Node) (*snapshot, error) {
	now := s.now()
	snap := &snapshot{
		version: v,
		byID:    make(map[string]*entry, len(nodes)),
		order:   make([]*entry, 0, len(nodes)),
		changed: make(chan struct{}),
	}
	s.seenMu.Lock()
	for _, n := range nodes {
		if t, ok := s.seen[n.ID]; !ok || n.LastSeen.After(t) {
			if !n.LastSeen.IsZero() {
				s.seen[n.ID] = n.LastSeen
			}
		}
		e := &entry{stored: n, secretHash: n.SecretHash, node: apiNode(n)}
		e.node.LastSeen = s.seen[n.ID]
		e.node.Online = s.isOnlineLocked(n.ID, now)
		if e.node.Online {
			snap.online++
		}
		b, err := json.Marshal(&e.node)
		if err != nil {
			s.seenMu.Unlock()
			return nil, err
		}
		e.json = b
		snap.byID[n.ID] = e
		snap.order = append(snap.order, e)
	}
	s.seenMu.Unlock()

	mesh := s.set.Mesh
	head := []byte(`{"version":` + strconv.FormatUint(v, 10) + `,"mesh_id":`)
	head = appendJSON(head, mesh.ID)
	head = append(head, `,"mesh_cidr":`...)
	head = appendJSON(head, mesh.CIDR)
	snap.head = append(head, `,"self":`...)

	tail := []byte(`,"dns":`)
	tail = appendJSON(tail, api.DNSConfig{Zone: s.set.DNSZone, Servers: s.set.DNSServers})
	if len(s.set.Relays) > 0 {
		tail = append(tail, `,"relays":`...)
		tail = appendJSON(tail, s.set.Relays)
	}
	snap.tail = tail
	// Before publishing: the policy compiles against these nodes.
	s.policySetNodes(snap)
	return snap, nil
}

func appendJSON(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		// Only called with types that always marshal.
		panic("server: marshal " + err.Error())
	}
	return append(b, j...)
}

func apiNode(n store.Node) api.Node {
	return api.Node{
		ID:          n.ID,
		Name:        n.Name,
		IP:          n.IP,
		PublicKey:   n.PublicKey,
		Endpoints:   n.Endpoints,
		SSHEndpoint: n.SSHEndpoint,
		SSHHostKey:  n.SSHHostKey,
		Tags:        n.Tags,
	}
}

// render returns self's netmap as JSON: the same document as
// json.Marshal(api.Netmap{...}) but assembled from the snapshot's
// pre-encoded parts, so a change fans out to many watchers cheaply.
func (s *Server) render(snap *snapshot, self *entry) []byte {
	pol := s.set.Policy
	size := len(snap.head) + len(self.json) + len(snap.tail) + 32
	for _, e := range snap.order {
		size += len(e.json) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, snap.head...)
	b = append(b, self.json...)
	b = append(b, `,"peers":[`...)
	first := true
	for _, e := range snap.order {
		if e == self || (pol != nil && !pol.Visible(&self.node, &e.node)) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, e.json...)
	}
	b = append(b, ']')
	b = append(b, snap.tail...)
	if pol != nil {
		if f := pol.Filter(&self.node); f != nil {
			b = append(b, `,"filter":`...)
			b = appendJSON(b, f)
		}
	}
	return append(b, '}')
}
