package policy

import (
	"slices"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Protocols a rule may name. They are the protocols of api.FilterRule.
const (
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
	ProtoICMP = "icmp"
	ProtoAny  = "any"
)

// Limits of a policy file.
const (
	MaxFileBytes  = 1 << 20 // larger files are refused before parsing
	MaxRuleName   = 64
	MaxGroupDepth = 32 // groups nested deeper than this are refused
)

// Policy is a parsed and checked policy file. Its methods do not modify it,
// so one Policy may be used from several goroutines.
type Policy struct {
	Groups    []Group    // in file order
	Tags      []string   // declared tags, without the "tag:" prefix
	Rules     []Rule     // in file order
	Tests     []Test     // in file order
	TestNodes []TestNode // nodes the tests may name that are not in the mesh
	// Docker is the docker section (see Docker), nil when there is none.
	Docker *Docker
	// Storage is the storage section (see Storage), nil when there is none
	// (StorageSection then gives the default).
	Storage *Storage
	// NFS is the nfs section (see NFS), nil when there is none.
	NFS *NFS

	file string
}

// Group is a named set of nodes.
type Group struct {
	Name    string
	Members []Selector
	Line    int

	set nodeSet // members with groups expanded
}

// SelectorKind says what a Selector names.
type SelectorKind int

// Selector kinds.
const (
	SelectAll   SelectorKind = iota + 1 // "*": every node
	SelectNode                          // a node by name
	SelectTag                           // "tag:NAME": every node with the tag
	SelectGroup                         // "group:NAME": every member of the group
)

// Selector names nodes: "*", a node name, "tag:NAME" or "group:NAME".
type Selector struct {
	Kind SelectorKind
	Name string // node, tag or group name; empty for SelectAll
}

func (s Selector) String() string {
	switch s.Kind {
	case SelectAll:
		return "*"
	case SelectTag:
		return "tag:" + s.Name
	case SelectGroup:
		return "group:" + s.Name
	default:
		return s.Name
	}
}

// Rule lets the nodes From reach the nodes To on Protocols and Ports.
type Rule struct {
	Name      string
	From      []Selector
	To        []Selector
	Protocols []string        // sorted, deduplicated; "any" stands alone
	Ports     []api.PortRange // sorted and merged; empty means every port
	Line      int

	from, to nodeSet
}

// Test is a named expectation the policy must meet before it is accepted.
type Test struct {
	Name   string
	From   string   // node name
	Accept []Target // From must reach each of these
	Deny   []Target // From must not reach any of these
	// StorageAccept and StorageDeny are storage targets (Action and
	// Bucket set): From must, or must not, be granted each.
	StorageAccept []Target
	StorageDeny   []Target
	// NFSAccept and NFSDeny are nfs targets (Action and Export set): From
	// must, or must not, be granted each.
	NFSAccept []Target
	NFSDeny   []Target
	Line      int
}

// Target is a destination of a test: a node, a protocol and a port; or, for
// a storage test, an action on a bucket.
type Target struct {
	Spec     string // as written, e.g. "db1:5432/tcp" or "write:logs"
	Node     string
	Protocol string // tcp, udp or icmp
	Port     uint16 // 0 for icmp
	Action   string // storage tests: read, write or list; nfs tests: mount or write
	Bucket   string // storage tests
	Export   string // nfs tests
	Line     int
}

// TestNode is a node the tests may name before it exists in the mesh.
type TestNode struct {
	Name string
	Tags []string // without the "tag:" prefix
	Line int
}

// nodeSet is a resolved set of nodes: everything, or nodes by name or tag.
type nodeSet struct {
	all   bool
	names map[string]bool
	tags  map[string]bool
}

func (s *nodeSet) add(o nodeSet) {
	if o.all {
		s.all = true
	}
	for n := range o.names {
		s.addName(n)
	}
	for t := range o.tags {
		s.addTag(t)
	}
}

func (s *nodeSet) addName(n string) {
	if s.names == nil {
		s.names = map[string]bool{}
	}
	s.names[n] = true
}

func (s *nodeSet) addTag(t string) {
	if s.tags == nil {
		s.tags = map[string]bool{}
	}
	s.tags[t] = true
}

func (s nodeSet) contains(name string, tags []string) bool {
	if s.all || s.names[name] {
		return true
	}
	for _, t := range tags {
		if s.tags[normTag(t)] {
			return true
		}
	}
	return false
}

// normTag returns a node's tag as the policy compares it: lowercase,
// without the "tag:" prefix.
func normTag(t string) string {
	return strings.TrimPrefix(strings.ToLower(strings.TrimSpace(t)), "tag:")
}

// normNode returns a node's name as the policy compares it.
func normNode(n string) string { return api.NormalizeName(n) }

// Group returns the group named name.
func (p *Policy) Group(name string) (*Group, bool) {
	i := slices.IndexFunc(p.Groups, func(g Group) bool { return g.Name == name })
	if i < 0 {
		return nil, false
	}
	return &p.Groups[i], true
}
