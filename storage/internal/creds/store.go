package creds

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// File names in the data directory.
const (
	StoreFile      = "credentials.json"
	IdentitiesFile = "identities.json"
)

// Key is an S3 access key pair. Secret is a secret: never log it.
type Key struct {
	AccessKey string `json:"access_key"`
	Secret    string `json:"secret"`
}

// Entry is one node's credentials.
type Entry struct {
	Key
	NodeID    string            `json:"node_id"`
	Name      string            `json:"name"`
	PublicKey nodekey.PublicKey `json:"public_key"`
	Issued    time.Time         `json:"issued"`
}

type fileFormat struct {
	Admin Key              `json:"admin"`
	Nodes map[string]Entry `json:"nodes"`
}

// Store holds the issued credentials. Safe for concurrent use.
type Store struct {
	dir string
	// derive, if set, makes every key (see OpenDerived); nothing is saved.
	derive Deriver

	mu    sync.Mutex // guards the fields below
	admin Key
	nodes map[string]Entry // by node ID
}

// Open loads the store in dir, creating it (with a fresh admin key) when
// absent.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir, nodes: map[string]Entry{}}
	b, err := os.ReadFile(filepath.Join(dir, StoreFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if s.admin, err = newKey("TMADMIN"); err != nil {
			return nil, err
		}
		if err := s.saveLocked(); err != nil {
			return nil, err
		}
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("open credentials: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("open credentials %s: %w", filepath.Join(dir, StoreFile), err)
	}
	if f.Admin.AccessKey == "" || f.Admin.Secret == "" {
		return nil, fmt.Errorf("open credentials %s: no admin key", filepath.Join(dir, StoreFile))
	}
	s.admin = f.Admin
	for id, e := range f.Nodes {
		s.nodes[id] = e
	}
	return s, nil
}

// Admin returns the supervisor's own key.
func (s *Store) Admin() Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admin
}

// Issue returns the credentials of the node id with public key pub, making
// new ones when it has none or had them under another key. changed reports
// whether the identities file must be rewritten.
func (s *Store) Issue(id, name string, pub nodekey.PublicKey, now time.Time) (e Entry, changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.nodes[id]; ok && e.PublicKey == pub {
		return e, false, nil
	}
	k, err := s.nodeKey(id, pub)
	if err != nil {
		return Entry{}, false, err
	}
	e = Entry{Key: k, NodeID: id, Name: name, PublicKey: pub, Issued: now.UTC()}
	old, had := s.nodes[id]
	s.nodes[id] = e
	if err := s.saveLocked(); err != nil {
		if had {
			s.nodes[id] = old
		} else {
			delete(s.nodes, id)
		}
		return Entry{}, false, err
	}
	return e, true, nil
}

// Prune revokes the credentials of every node whose ID is not in members
// or whose key differs from the one there, and returns their IDs.
func (s *Store) Prune(members map[string]nodekey.PublicKey) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []string
	for id, e := range s.nodes {
		if pub, ok := members[id]; !ok || pub != e.PublicKey {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	saved := make(map[string]Entry, len(gone))
	for _, id := range gone {
		saved[id] = s.nodes[id]
		delete(s.nodes, id)
	}
	if err := s.saveLocked(); err != nil {
		for id, e := range saved {
			s.nodes[id] = e
		}
		return nil, err
	}
	slices.Sort(gone)
	return gone, nil
}

// Entries returns the issued credentials sorted by node ID.
func (s *Store) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, len(s.nodes))
	for _, e := range s.nodes {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmpString(a.NodeID, b.NodeID) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Store) saveLocked() error {
	if s.derive != nil {
		return nil // every key can be derived again
	}
	b, err := json.MarshalIndent(fileFormat{Admin: s.admin, Nodes: s.nodes}, "", "  ")
	if err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, StoreFile), append(b, '\n')); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func newKey(prefix string) (Key, error) {
	var a [15]byte
	var s [30]byte
	if _, err := rand.Read(a[:]); err != nil {
		return Key{}, fmt.Errorf("new s3 key: %w", err)
	}
	if _, err := rand.Read(s[:]); err != nil {
		return Key{}, fmt.Errorf("new s3 key: %w", err)
	}
	ak := prefix + b32.EncodeToString(a[:])
	return Key{AccessKey: ak[:20], Secret: base64.RawURLEncoding.EncodeToString(s[:])}, nil
}

// writeFileAtomic writes data to path with mode 0600 through a temporary
// file and a rename, so readers see the old or the new content.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
