// Package policystore keeps the mesh's policy: every accepted version in a
// directory (one file per version, written atomically, kept for rollback),
// the current version parsed, and the current version compiled for the
// current nodes, which the server puts into each node's netmap. It
// implements server.Policy.
//
// Until a first version is stored, the built-in default policy
// (policy.DefaultYAML) is in force as version 0: it is compiled into every
// node's filter and returned by Get(0), but it is not stored, so Versions
// lists nothing. The first Put stores version 1 and replaces it.
package policystore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/policy"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Errors of Put and Get; check with errors.Is.
var (
	ErrInvalid     = errors.New("policy is invalid")
	ErrTestsFailed = errors.New("policy tests failed")
	ErrConflict    = errors.New("policy changed meanwhile")
	ErrNotFound    = errors.New("no such policy version")
)

// DefaultKeep is how many versions are kept.
const DefaultKeep = 100

// MaxPolicyBytes bounds a stored policy.
const MaxPolicyBytes = api.MaxBodyBytes - 1024

const fileExt = ".json"

// Store is the policy store. It is safe for concurrent use.
type Store struct {
	be   Backend
	keep int
	log  *slog.Logger

	mu    sync.Mutex // serialises Put and SetNodes; guards the fields below
	nodes []api.Node
	key   string // nodesKey(nodes) of the last compile

	state atomic.Pointer[state] // read lock-free by Filter
}

// state is the current policy and its compiled filters; never modified
// once published.
type state struct {
	cur     *policy.Version // Version 0: the built-in default, not stored
	pol     *policy.Policy
	filters map[string]*api.Filter // by node name
}

// Open loads the store in dir (created 0700 if missing). When it holds no
// policy and bootstrap is non-empty, bootstrap is checked (its tests run
// against its test_nodes only) and stored as version 1: that is how a
// coordinator config ships its own first policy. When it holds no policy
// and bootstrap is empty, the built-in default policy is in force as
// version 0 until the first Put. keep <= 0 means DefaultKeep.
func Open(dir string, bootstrap []byte, keep int, log *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open policy store: %w", err)
	}
	return OpenBackend(dirBackend{dir}, bootstrap, keep, log)
}

// OpenBackend is Open on the versions kept by be. Several stores may share
// one backend (registry replicas on one database): each sees the others'
// versions after Reload, and of two racing Puts one fails with
// ErrConflict.
func OpenBackend(be Backend, bootstrap []byte, keep int, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if keep <= 0 {
		keep = DefaultKeep
	}
	s := &Store{be: be, keep: keep, log: log}
	def, err := builtinDefault()
	if err != nil {
		return nil, fmt.Errorf("open policy store: %w", err)
	}
	s.state.Store(def)
	loaded, err := s.reload()
	if err != nil {
		return nil, fmt.Errorf("open policy store: %w", err)
	}
	if loaded {
		return s, nil
	}
	if len(bytes.TrimSpace(bootstrap)) > 0 {
		_, err := s.Put(bootstrap, 0, time.Now())
		if errors.Is(err, ErrConflict) {
			// Another replica stored its first version meanwhile.
			_, err = s.reload()
		}
		if err != nil {
			return nil, fmt.Errorf("open policy store: initial policy: %w", err)
		}
	} else {
		log.Info("no policy applied: the built-in default policy is in force (ping between nodes, DNS to nodes tagged dns)")
	}
	return s, nil
}

// Reload makes the newest stored version current when it is newer than
// the current one (stored by another replica sharing the backend). The
// server calls it when another replica reports a change.
func (s *Store) Reload() error {
	if _, err := s.reload(); err != nil {
		return fmt.Errorf("reload policy: %w", err)
	}
	return nil
}

// reload loads the newest stored version if it is newer than the current
// one; it reports whether a stored version is current afterwards.
func (s *Store) reload() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *Store) reloadLocked() (bool, error) {
	versions, err := s.be.Versions()
	if err != nil {
		return false, err
	}
	st := s.state.Load()
	if len(versions) == 0 {
		return false, nil
	}
	if versions[0] <= st.cur.Version {
		return true, nil
	}
	v, err := s.be.Read(versions[0])
	if err != nil {
		return false, err
	}
	pol, err := policy.Parse(fmt.Sprintf("policy version %d", v.Version), []byte(v.Policy))
	if err != nil {
		return false, fmt.Errorf("stored version %d: %w", v.Version, err)
	}
	s.state.Store(&state{cur: &v, pol: pol, filters: policy.Compile(pol, s.nodes, v.Version)})
	return true, nil
}

// builtinDefault is the state before the first stored version: the
// built-in default policy as version 0, compiled for no nodes yet.
func builtinDefault() (*state, error) {
	pol, err := policy.Parse("built-in default policy", policy.DefaultYAML)
	if err != nil {
		return nil, err
	}
	v := policy.Version{Version: 0, Policy: string(policy.DefaultYAML)}
	return &state{cur: &v, pol: pol, filters: policy.Compile(pol, nil, 0)}, nil
}

// Current returns the current version and whether it is a stored one;
// false means the built-in default policy (version 0) is in force.
func (s *Store) Current() (policy.Version, bool) {
	cur := *s.state.Load().cur
	return cur, cur.Version != 0
}

// Get returns version v, or the current one for v == 0: the built-in
// default policy as version 0 while no version is stored. ErrNotFound
// when v is not kept.
func (s *Store) Get(v uint64) (policy.Version, error) {
	if v == 0 {
		cur, _ := s.Current()
		return cur, nil
	}
	out, err := s.be.Read(v)
	if err != nil {
		return policy.Version{}, fmt.Errorf("get policy version %d: %w", v, err)
	}
	return out, nil
}

// Versions lists the kept versions, newest first.
func (s *Store) Versions() ([]policy.VersionInfo, error) {
	vs, err := s.be.Versions()
	if err != nil {
		return nil, fmt.Errorf("list policy versions: %w", err)
	}
	out := make([]policy.VersionInfo, 0, len(vs))
	for _, n := range vs {
		v, err := s.be.Read(n)
		if errors.Is(err, ErrNotFound) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list policy versions: %w", err)
		}
		out = append(out, policy.VersionInfo{Version: v.Version, CreatedAt: v.CreatedAt, Bytes: len(v.Policy)})
	}
	return out, nil
}

// Put checks doc and makes it the current policy: it must parse, and its
// tests must pass against the current nodes (plus its test_nodes). With
// ifVersion non-zero the current version must be ifVersion
// (ErrConflict). A doc equal to the current policy stores nothing
// (Changed false). On any error nothing changes. The caller then bumps the
// mesh version so that nodes get their new filters.
func (s *Store) Put(doc []byte, ifVersion uint64, now time.Time) (policy.PutResponse, error) {
	if len(doc) > MaxPolicyBytes {
		return policy.PutResponse{}, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalid, len(doc), MaxPolicyBytes)
	}
	pol, err := policy.Parse("policy.yaml", doc)
	if err != nil {
		return policy.PutResponse{}, fmt.Errorf("%w:\n%w", ErrInvalid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Another replica may have stored a version since.
	if _, err := s.reloadLocked(); err != nil {
		return policy.PutResponse{}, fmt.Errorf("store policy: %w", err)
	}
	st := s.state.Load()
	curVersion := st.cur.Version
	if ifVersion != 0 && ifVersion != curVersion {
		return policy.PutResponse{}, fmt.Errorf("%w: current version is %d, not %d", ErrConflict, curVersion, ifVersion)
	}
	results := pol.RunTests(s.nodes)
	if err := pol.Check(s.nodes); err != nil {
		return policy.PutResponse{}, fmt.Errorf("%w:\n%w", ErrTestsFailed, err)
	}
	if curVersion != 0 && st.cur.Policy == string(doc) {
		return policy.PutResponse{Version: curVersion, Changed: false, Tests: len(results)}, nil
	}
	v := policy.Version{Version: curVersion + 1, CreatedAt: now.UTC(), Policy: string(doc)}
	if err := s.be.Create(v); err != nil {
		if errors.Is(err, ErrConflict) {
			return policy.PutResponse{}, fmt.Errorf("store policy version %d: %w", v.Version, err)
		}
		return policy.PutResponse{}, fmt.Errorf("store policy: %w", err)
	}
	s.state.Store(&state{cur: &v, pol: pol, filters: policy.Compile(pol, s.nodes, v.Version)})
	s.prune()
	s.log.Info("policy applied", "policy_version", v.Version, "rules", len(pol.Rules), "tests", len(results))
	return policy.PutResponse{Version: v.Version, Changed: true, Tests: len(results)}, nil
}

// SetNodes gives the store the mesh's nodes; the server calls it whenever
// it rebuilds its snapshot. The policy is recompiled only when a node's
// name, address, tags or docker services changed.
func (s *Store) SetNodes(nodes []api.Node) {
	key := nodesKey(nodes)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes = slices.Clone(nodes)
	st := s.state.Load()
	if key == s.key && st.filters != nil {
		return
	}
	s.key = key
	s.state.Store(&state{cur: st.cur, pol: st.pol, filters: policy.Compile(st.pol, s.nodes, st.cur.Version)})
}

// Nodes returns the nodes last given to SetNodes.
func (s *Store) Nodes() []api.Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.nodes)
}

// Visible reports whether self may see peer: always. The policy limits
// what passes between nodes, not who knows whom (a node must know a peer's
// key to answer it).
func (s *Store) Visible(self, peer *api.Node) bool { return true }

// ViewVersion is constant: Visible never changes its answer (the
// registry's server.PolicyViews, which lets it send netmap deltas).
func (s *Store) ViewVersion() uint64 { return 0 }

// Filter returns self's compiled inbound filter under the current policy
// (the built-in default while none is stored).
func (s *Store) Filter(self *api.Node) *api.Filter {
	st := s.state.Load()
	if f := st.filters[api.NormalizeName(self.Name)]; f != nil {
		return f
	}
	// A node the last compile did not know: nothing may reach it yet.
	return &api.Filter{PolicyVersion: st.cur.Version, Rules: []api.FilterRule{}}
}

// nodesKey is what compilation depends on: names, addresses and tags.
func nodesKey(nodes []api.Node) string {
	var b strings.Builder
	for _, n := range nodes {
		b.WriteString(n.Name)
		b.WriteByte(' ')
		b.WriteString(n.IP.String())
		for _, t := range n.Tags {
			b.WriteByte(' ')
			b.WriteString(t)
		}
		// Docker services compile into filter rules (the docker section),
		// a storage node gets the storage grants and an NFS node the nfs
		// grants.
		for _, sv := range n.Services {
			if sv.Owner != "" || sv.Name == api.ServiceStorageAuth || sv.Name == api.ServiceNFS {
				fmt.Fprintf(&b, " svc:%s/%s/%d/%s/%s", sv.Name, sv.Protocol, sv.Port, sv.Owner, sv.Allow)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Backend keeps the policy versions.
type Backend interface {
	// Versions lists the stored version numbers, newest first.
	Versions() ([]uint64, error)
	// Read returns version v; an error wrapping ErrNotFound when it is
	// not stored.
	Read(v uint64) (policy.Version, error)
	// Create stores v; an error wrapping ErrConflict when version
	// v.Version is stored already. A stored version never changes.
	Create(v policy.Version) error
	// Delete removes version v (pruning).
	Delete(v uint64) error
}

// dirBackend keeps each version in a file of its own in a directory.
type dirBackend struct{ dir string }

func (d dirBackend) path(v uint64) string {
	return filepath.Join(d.dir, fmt.Sprintf("%020d%s", v, fileExt))
}

// Versions implements Backend.
func (d dirBackend) Versions() ([]uint64, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), fileExt)
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil || n == 0 {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out, nil
}

// Read implements Backend.
func (d dirBackend) Read(v uint64) (policy.Version, error) {
	data, err := os.ReadFile(d.path(v))
	if errors.Is(err, os.ErrNotExist) {
		return policy.Version{}, fmt.Errorf("%w: %d", ErrNotFound, v)
	}
	if err != nil {
		return policy.Version{}, err
	}
	var out policy.Version
	if err := json.Unmarshal(data, &out); err != nil {
		return policy.Version{}, fmt.Errorf("%s: %w", d.path(v), err)
	}
	if out.Version != v {
		return policy.Version{}, fmt.Errorf("%s: holds version %d", d.path(v), out.Version)
	}
	return out, nil
}

// Create implements Backend: a temporary file, synced, renamed into
// place, and the directory synced.
func (d dirBackend) Create(v policy.Version) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(d.dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if _, err := os.Stat(d.path(v.Version)); err == nil {
		return fmt.Errorf("%w: version %d exists already", ErrConflict, v.Version)
	}
	if err := os.Rename(tmp.Name(), d.path(v.Version)); err != nil {
		return err
	}
	dir, err := os.Open(d.dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// Delete implements Backend.
func (d dirBackend) Delete(v uint64) error { return os.Remove(d.path(v)) }

// prune removes versions beyond the newest s.keep.
func (s *Store) prune() {
	vs, err := s.be.Versions()
	if err != nil || len(vs) <= s.keep {
		return
	}
	for _, v := range vs[s.keep:] {
		if err := s.be.Delete(v); err != nil {
			s.log.Warn("prune policy version", "policy_version", v, "err", err)
		}
	}
}
