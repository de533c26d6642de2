package policy

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Storage actions a bucket grant names; each maps to the SeaweedFS action
// of the same name with the first letter upper-cased ("Read:logs").
const (
	StorageRead  = "read"
	StorageWrite = "write"
	StorageList  = "list"
)

var storageActions = []string{StorageRead, StorageWrite, StorageList}

// DefaultStorageBucket is the bucket every member may read, write and list
// when the policy has no storage section.
const DefaultStorageBucket = "mesh"

// Storage is the policy's storage section: who may read, write and list
// which buckets of the mesh's object storage (tunnelmesh-storage). Without
// a storage section, every member may read, write and list bucket
// DefaultStorageBucket and nothing else; with one, exactly the buckets it
// names.
//
//	storage:
//	  buckets:
//	    mesh: {read: "*", write: "*", list: "*"}
//	    logs:
//	      write: [tag:web]
//	      read: [group:ops]
//	      list: [group:ops]
type Storage struct {
	Buckets []Bucket // in file order
	Line    int
}

// Bucket is one bucket's grants: the nodes each action is granted to.
type Bucket struct {
	Name  string
	Read  []Selector
	Write []Selector
	List  []Selector
	Line  int

	read, write, list nodeSet
}

// defaultStorage is the storage section of a policy that has none.
var defaultStorage = &Storage{Buckets: []Bucket{{
	Name: DefaultStorageBucket,
	Read: []Selector{{Kind: SelectAll}}, Write: []Selector{{Kind: SelectAll}}, List: []Selector{{Kind: SelectAll}},
	read: nodeSet{all: true}, write: nodeSet{all: true}, list: nodeSet{all: true},
}}}

// StorageSection returns the storage section in force: the policy's, or
// the default (bucket mesh for every member).
func (p *Policy) StorageSection() *Storage {
	if p.Storage != nil {
		return p.Storage
	}
	return defaultStorage
}

func (b *Bucket) set(action string) nodeSet {
	switch action {
	case StorageRead:
		return b.read
	case StorageWrite:
		return b.write
	case StorageList:
		return b.list
	}
	return nodeSet{}
}

// StorageAllowed reports whether node n may perform action (read, write or
// list) on bucket, and names the grant that allows it
// ("storage.buckets.logs.write").
func (p *Policy) StorageAllowed(n api.Node, action, bucket string) (grant string, ok bool) {
	s := p.StorageSection()
	for i := range s.Buckets {
		b := &s.Buckets[i]
		if b.Name == bucket && b.set(action).contains(normNode(n.Name), n.Tags) {
			return "storage.buckets." + b.Name + "." + action, true
		}
	}
	return "", false
}

// StorageActions returns the SeaweedFS actions of node n, sorted
// ("List:logs", "Read:mesh", "Write:mesh"): what tunnelmesh-storage puts in
// the node's identity.
func (p *Policy) StorageActions(n api.Node) []string {
	var out []string
	for _, b := range p.StorageSection().Buckets {
		for _, a := range storageActions {
			if b.set(a).contains(normNode(n.Name), n.Tags) {
				out = append(out, strings.ToUpper(a[:1])+a[1:]+":"+b.Name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// compileStorage sets Filter.Storage on every node that publishes
// api.ServiceStorageAuth: each member's StorageActions by name.
func compileStorage(pol *Policy, nodes []api.Node, out map[string]*api.Filter) {
	var grants *api.StorageGrants
	for _, n := range nodes {
		if !slices.ContainsFunc(n.Services, func(s api.Service) bool { return s.Name == api.ServiceStorageAuth }) {
			continue
		}
		if grants == nil {
			grants = &api.StorageGrants{Nodes: make(map[string][]string, len(nodes))}
			for _, m := range nodes {
				if a := pol.StorageActions(m); len(a) > 0 {
					grants.Nodes[normNode(m.Name)] = a
				}
			}
		}
		out[normNode(n.Name)].Storage = grants
	}
}

// validateBucket checks an S3 bucket name: 3 to 63 characters, lowercase
// letters, digits, '-' and '.', starting and ending with a letter or digit,
// no "..".
func validateBucket(s string) error {
	if len(s) < 3 || len(s) > 63 {
		return fmt.Errorf("bucket name %q: want 3 to 63 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '.') && i > 0 && i < len(s)-1:
		default:
			return fmt.Errorf("bucket name %q: only lowercase letters, digits, '-' and '.', starting and ending with a letter or digit", s)
		}
	}
	if strings.Contains(s, "..") {
		return fmt.Errorf("bucket name %q: contains \"..\"", s)
	}
	return nil
}

func (ps *parser) storage(pol *Policy, n *yaml.Node, path string) *Storage {
	entries, ok := ps.namedGrants(n, path, "buckets", storageActions, "grants nothing: name read, write or list", validateBucket)
	if !ok {
		return nil
	}
	s := &Storage{Line: n.Line}
	for _, g := range entries {
		b := Bucket{Name: g.name, Line: g.line}
		for _, l := range g.levels {
			set := resolve(pol, l.sels)
			switch l.level {
			case StorageRead:
				b.Read, b.read = l.sels, set
			case StorageWrite:
				b.Write, b.write = l.sels, set
			case StorageList:
				b.List, b.list = l.sels, set
			}
		}
		s.Buckets = append(s.Buckets, b)
	}
	return s
}

// ParseStorageTarget parses a storage test target "ACTION:BUCKET"
// ("write:logs").
func ParseStorageTarget(s string) (Target, error) {
	action, bucket, found := strings.Cut(s, ":")
	action = strings.ToLower(strings.TrimSpace(action))
	if !found || !slices.Contains(storageActions, action) {
		return Target{}, fmt.Errorf("invalid storage target %q: want read:BUCKET, write:BUCKET or list:BUCKET", s)
	}
	if err := validateBucket(bucket); err != nil {
		return Target{}, fmt.Errorf("invalid storage target %q: %v", s, err)
	}
	return Target{Spec: s, Action: action, Bucket: bucket}, nil
}
