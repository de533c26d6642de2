package creds

import (
	"slices"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Deriver computes keys instead of drawing them at random: every storage
// node of a cluster holding the same Deriver computes the same keys.
type Deriver interface {
	// Admin is the supervisor's own key.
	Admin() Key
	// Node is the key of node id with public key pub.
	Node(id string, pub nodekey.PublicKey) Key
}

// OpenDerived returns a store whose keys all come from d: the admin key,
// and a key for every member Sync is given, issued or not, so that any
// storage node of the cluster accepts a key another one issued. Nothing is
// written to dir but the identities file.
func OpenDerived(dir string, d Deriver) *Store {
	return &Store{dir: dir, derive: d, admin: d.Admin(), nodes: map[string]Entry{}}
}

func (s *Store) nodeKey(id string, pub nodekey.PublicKey) (Key, error) {
	if s.derive != nil {
		return s.derive.Node(id, pub), nil
	}
	return newKey("TM")
}

// Sync makes the store hold the credentials of exactly members: it revokes
// those of nodes not among them (or whose key changed) and returns their
// IDs, as Prune does. A derived store also gives every member not yet
// holding one its key. changed reports whether the identities file must be
// rewritten.
func (s *Store) Sync(members map[string]nodekey.PublicKey, now time.Time) (gone []string, changed bool, err error) {
	gone, err = s.Prune(members)
	if err != nil || s.derive == nil {
		return gone, len(gone) > 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	added := false
	for id, pub := range members {
		if _, ok := s.nodes[id]; ok {
			continue
		}
		s.nodes[id] = Entry{Key: s.derive.Node(id, pub), NodeID: id, PublicKey: pub, Issued: now.UTC()}
		added = true
	}
	slices.Sort(gone)
	return gone, added || len(gone) > 0, nil
}
