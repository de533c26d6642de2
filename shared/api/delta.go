package api

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Incremental netmaps.
//
// A node that holds the netmap at version V, and got it from a registry
// process that named its netmap history in the NetmapBaseHeader of that
// answer, may watch with ?since=V&delta=<that name>. When the same process
// still knows what changed since V, it answers with a NetmapDelta on V
// (DeltaFrom = V); otherwise, and always for a client that does not ask,
// with a whole Netmap. Both carry NetmapBaseHeader.
//
// A delta carries, complete, everything of the netmap except the peers and
// the filter: version, mesh, PSK, self, DNS, relays and registries. Peers
// lists the peers that were added or changed since V and are visible to the
// node now; Removed lists the IDs of peers the node held at V that are gone
// or no longer visible to it. Filter is set when the node's filter changed
// since V, and absent when it did not. Applying a delta to the netmap at V
// (ApplyDelta) gives the netmap at Version exactly, peers in the order of a
// whole netmap (by name, then ID).
const (
	// NetmapBaseHeader names, on a netmap answer, the registry process
	// whose history deltas on this answer come from.
	NetmapBaseHeader = "X-Tunnelmesh-Netmap-Base"
	// NetmapDeltaParam is the query parameter of a netmap watch carrying
	// the NetmapBaseHeader of the answer the node holds.
	NetmapDeltaParam = "delta"
)

// NetmapDelta is the body of a netmap answer: a whole Netmap when DeltaFrom
// is zero, else a delta on the netmap at version DeltaFrom.
type NetmapDelta struct {
	Netmap
	// DeltaFrom is the version of the netmap this delta applies to.
	DeltaFrom uint64 `json:"delta_from,omitempty"`
	// Removed are the IDs of peers to drop.
	Removed []string `json:"removed,omitempty"`
}

// ErrDeltaBase is returned by ApplyDelta when the delta does not apply to
// the netmap it is given; the node asks for a whole netmap.
var ErrDeltaBase = errors.New("netmap delta does not apply to the netmap held")

// ApplyDelta returns the netmap d describes: d's own netmap when it is whole,
// else base with d applied. base is not modified; the result shares the
// peers' records (their slices included) with base and d.
func ApplyDelta(base *Netmap, d *NetmapDelta) (*Netmap, error) {
	if d.DeltaFrom == 0 {
		nm := d.Netmap
		if nm.Peers == nil {
			nm.Peers = []Node{}
		}
		return &nm, nil
	}
	if base == nil {
		return nil, fmt.Errorf("%w: delta on version %d, no netmap held", ErrDeltaBase, d.DeltaFrom)
	}
	if base.Version != d.DeltaFrom || d.Version < d.DeltaFrom {
		return nil, fmt.Errorf("%w: delta on version %d to %d, netmap held is version %d", ErrDeltaBase, d.DeltaFrom, d.Version, base.Version)
	}
	nm := d.Netmap
	if nm.Filter == nil {
		nm.Filter = base.Filter
	}
	drop := make(map[string]bool, len(d.Removed)+len(d.Peers))
	for _, id := range d.Removed {
		drop[id] = true
	}
	added := make(map[string]bool, len(d.Peers))
	for i := range d.Peers {
		id := d.Peers[i].ID
		if added[id] {
			return nil, fmt.Errorf("%w: peer %q listed twice", ErrDeltaBase, id)
		}
		added[id], drop[id] = true, true
	}
	peers := make([]Node, 0, len(base.Peers)+len(d.Peers))
	for i := range base.Peers {
		if !drop[base.Peers[i].ID] {
			peers = append(peers, base.Peers[i])
		}
	}
	peers = append(peers, d.Peers...)
	slices.SortFunc(peers, comparePeers)
	nm.Peers = peers
	return &nm, nil
}

// comparePeers is the order of a netmap's peers: by name, then ID.
func comparePeers(a, b Node) int {
	if c := cmp.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}
