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
// node's copy, what it could see of them at V; that holds when the policy's
// view (PolicyViews) and the node's own record are unchanged since V. When
// either changed, or with a Policy that is not a PolicyViews, the node gets
// a whole netmap.

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
	for i, id := range pc.ids {
		pc.old[i] = seen[id]
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
		vv, ok := pol.(PolicyViews)
		// The node's copy holds the peers it could see at from: they are
		// still the ones it may see only when neither the view nor
		// self's record changed since.
		if !ok || snap.viewSince > from || vv.ViewVersion() != snap.view || self.since > from {
			return nil, 0, false
		}
		if self.filterSince > from && self.filterJSON == nil {
			return nil, 0, false // a delta cannot say "no filter"
		}
	}
	pc, ok := snap.changesSince(from)
	// A delta that changes most of a large mesh is no smaller than the
	// whole netmap, which is compressed once for every watcher.
	if !ok || (len(pc.ids) > 32 && 2*len(pc.ids) > len(snap.order)) {
		return nil, 0, false
	}
	visible := func(peer *api.Node) bool { return pol == nil || pol.Visible(&self.node, peer) }
	var peers, removed []byte
	for i, id := range pc.ids {
		if id == self.node.ID {
			continue
		}
		if e := snap.byID[id]; e != nil && visible(&e.node) {
			if len(peers) > 0 {
				peers = append(peers, ',')
			}
			peers = append(peers, e.json...)
			continue
		}
		if old := pc.old[i]; old != nil && visible(old) {
			if len(removed) > 0 {
				removed = append(removed, ',')
			}
			removed = appendJSON(removed, id)
		}
	}
	// snap.head is {"version":V,"mesh_id":...,"self":
	head := []byte(`{"version":` + strconv.FormatUint(snap.version, 10) + `,"delta_from":` + strconv.FormatUint(from, 10) + `,`)
	rest := snap.head[bytes.IndexByte(snap.head, ',')+1:]
	var removedOpen, removedClose, filter []byte
	if len(removed) > 0 {
		removedOpen, removedClose = removedOpenJSON, peersClose
	}
	if self.filterSince > from {
		filter = self.filterJSON
	}
	parts := [][]byte{head, rest, self.json, peersOpen, peers, peersClose, removedOpen, removed, removedClose, snap.tail, filter, docClose}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return parts, n, true
}

var removedOpenJSON = []byte(`,"removed":[`)
