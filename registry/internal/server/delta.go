package server

import (
	"bytes"
	"slices"
	"strconv"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Incremental netmaps (api.NetmapDelta). Each snapshot carries the bounded
// history of the changes that led to it: per version step, the peers whose
// record changed (joined, left, or any field of theirs, online state
// included) with their record before the step. The history is built by
// comparing each new snapshot with the one it replaces, so a replica that
// learns changes from another one (store.Changes) builds it from what it
// reloads, and a reload that skips versions is one step.
//
// A watcher holding version V gets a delta when this process served it V
// (the base named by api.NetmapBaseHeader) and the history still reaches
// back to V. Its peers are the peers changed since V that it may see now;
// its removed IDs are the peers changed since V that it could see at V and
// no longer can (or that left). Peers that did not change keep, in the
// node's copy, what it could see of them at V; that holds while the
// policy's view (PolicyViews) is unchanged since V. When the node's own
// record changed since V (its tags, say), what it may see of every peer is
// compared with what it could see at V, with its record and theirs at V
// taken from the history. When the view changed, or with a Policy that is
// not a PolicyViews, the node gets a whole netmap; so it does when the
// changes since V are most of a large mesh. Everything else of the netmap
// (self, PSK, DNS, relays, registries) is small and always sent whole; the
// filter is sent when it changed since V.

// PolicyViews is implemented by a Policy whose Visible answers for
// records that did not change change only when ViewVersion does. With a
// Policy that is not one, every watcher gets whole netmaps.
type PolicyViews interface {
	ViewVersion() uint64
}

// History bounds: the steps kept, and the changed records they hold in all.
const (
	historySteps   = 256
	historyRecords = 1 << 16
)

// change is one step of the history: the snapshot at from replaced by the
// one at to.
type change struct {
	from, to uint64
	// old holds the changed peers' records at from (nil: not in the mesh
	// at from).
	old map[string]*api.Node
}

// recordChanges sets snap's history: prev's, plus the step from prev.
func (s *Server) recordChanges(snap, prev *snapshot) {
	if vv, ok := s.set.Policy.(PolicyViews); ok {
		snap.view = vv.ViewVersion()
	}
	snap.viewSince = prev.viewSince
	if snap.view != prev.view || prev.version == 0 {
		snap.viewSince = snap.version
	}
	if prev.version == 0 {
		return // the first snapshot: nobody holds an earlier netmap here
	}
	step := &change{from: prev.version, to: snap.version, old: map[string]*api.Node{}}
	for _, e := range snap.order {
		old := prev.byID[e.node.ID]
		switch {
		case old == nil:
			step.old[e.node.ID] = nil
		case e.since == snap.version:
			step.old[e.node.ID] = &old.node
		}
	}
	for id, old := range prev.byID {
		if snap.byID[id] == nil {
			step.old[id] = &old.node
		}
	}
	hist := append(slices.Clone(prev.hist), step)
	records := 0
	for _, c := range hist {
		records += len(c.old)
	}
	for len(hist) > historySteps || (records > historyRecords && len(hist) > 1) {
		records -= len(hist[0].old)
		hist = hist[1:]
	}
	snap.hist = slices.Clip(hist)
}

// peerChanges are the peers changed between a base version and a
// snapshot, with their records at the base (nil: not in the mesh then).
type peerChanges struct {
	ids []string
	old []*api.Node
	idx map[string]int // ID -> index in ids
}

// changesSince returns the peers changed since version from, or false when
// the history does not reach back to from. The answer is computed once per
// snapshot and base.
func (snap *snapshot) changesSince(from uint64) (*peerChanges, bool) {
	if pc, ok := snap.deltas.Load(from); ok {
		return pc.(*peerChanges), true
	}
	i := slices.IndexFunc(snap.hist, func(c *change) bool { return c.from == from })
	if i < 0 {
		return nil, false
	}
	seen := map[string]*api.Node{}
	pc := &peerChanges{}
	for _, c := range snap.hist[i:] {
		for id, old := range c.old {
			if _, ok := seen[id]; ok {
				continue // the earliest step holds the record at from
			}
			seen[id] = old
			pc.ids = append(pc.ids, id)
		}
	}
	slices.Sort(pc.ids)
	pc.old = make([]*api.Node, len(pc.ids))
	pc.idx = make(map[string]int, len(pc.ids))
	for i, id := range pc.ids {
		pc.old[i] = seen[id]
		pc.idx[id] = i
	}
	got, _ := snap.deltas.LoadOrStore(from, pc)
	return got.(*peerChanges), true
}

// deltaParts returns self's netmap as a delta on version from (see
// api.NetmapDelta), as JSON pieces and their total length, or false when
// self must get a whole netmap.
func (s *Server) deltaParts(snap *snapshot, self *entry, from uint64) ([][]byte, int, bool) {
	if from == 0 || from >= snap.version {
		return nil, 0, false
	}
	pol := s.set.Policy
	if pol != nil {
		// The node's copy holds the peers it could see at from: the
		// policy must still answer as it did then.
		vv, ok := pol.(PolicyViews)
		if !ok || snap.viewSince > from || vv.ViewVersion() != snap.view {
			return nil, 0, false
		}
		if self.filter != nil && self.filter.since > from && self.filterJSON() == nil {
			return nil, 0, false // a delta cannot say "no filter"
		}
	}
	pc, ok := snap.changesSince(from)
	// A delta that changes most of a large mesh is no smaller than the
	// whole netmap, which is compressed once for every watcher.
	if !ok || (len(pc.ids) > 32 && 2*len(pc.ids) > len(snap.order)) {
		return nil, 0, false
	}
	var peers, removed []byte
	addPeer := func(e *entry) {
		if len(peers) > 0 {
			peers = append(peers, ',')
		}
		peers = append(peers, e.json...)
	}
	removePeer := func(id string) {
		if len(removed) > 0 {
			removed = append(removed, ',')
		}
		removed = appendJSON(removed, id)
	}
	i, selfChanged := pc.idx[self.node.ID]
	switch {
	case pol == nil || !selfChanged:
		// Self's view of the peers that did not change is as at from:
		// the changed ones are all there is to send.
		for i, id := range pc.ids {
			if id == self.node.ID {
				continue
			}
			if e := snap.byID[id]; e != nil && (pol == nil || pol.Visible(&self.node, &e.node)) {
				addPeer(e)
			} else if old := pc.old[i]; old != nil && (pol == nil || pol.Visible(&self.node, old)) {
				removePeer(id)
			}
		}
	default:
		// Self's own record changed (its tags, say): what it may see of
		// every peer is compared with what it could see at from.
		oldSelf := pc.old[i]
		if oldSelf == nil {
			return nil, 0, false // not in the mesh at from
		}
		for _, e := range snap.order {
			if e == self {
				continue
			}
			old := &e.node
			j, changed := pc.idx[e.node.ID]
			if changed {
				old = pc.old[j]
			}
			was := old != nil && pol.Visible(oldSelf, old)
			now := pol.Visible(&self.node, &e.node)
			switch {
			case now && (changed || !was):
				addPeer(e)
			case !now && was:
				removePeer(e.node.ID)
			}
		}
		for j, id := range pc.ids {
			if old := pc.old[j]; snap.byID[id] == nil && old != nil && pol.Visible(oldSelf, old) {
				removePeer(id)
			}
		}
	}
	// snap.head is {"version":V,"mesh_id":...,"self":
	head := []byte(`{"version":` + strconv.FormatUint(snap.version, 10) + `,"delta_from":` + strconv.FormatUint(from, 10) + `,`)
	rest := snap.head[bytes.IndexByte(snap.head, ',')+1:]
	var removedOpen, removedClose, filter []byte
	if len(removed) > 0 {
		removedOpen, removedClose = removedOpenJSON, peersClose
	}
	if self.filter != nil && self.filter.since > from {
		filter = self.filterJSON()
	}
	parts := [][]byte{head, rest, self.json, peersOpen, peers, peersClose, removedOpen, removed, removedClose, snap.tail, filter, docClose}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return parts, n, true
}

var removedOpenJSON = []byte(`,"removed":[`)
