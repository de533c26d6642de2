package server

import (
	"strings"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/identity"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Level is what a node may do with an export.
type Level int

// Levels, in increasing order.
const (
	None Level = iota
	ReadOnly
	ReadWrite
)

func (l Level) String() string {
	switch l {
	case ReadOnly:
		return "read-only"
	case ReadWrite:
		return "read-write"
	}
	return "none"
}

// matches reports whether any selector names n.
func matches(sel []string, n *identity.Node) bool {
	for _, s := range sel {
		if s == "*" || s == n.Name {
			return true
		}
		if tag, ok := strings.CutPrefix(s, "tag:"); ok && n.HasTag(tag) {
			return true
		}
	}
	return false
}

// hasAllow reports whether the configuration lists who may mount e.
func (e *export) hasAllow() bool { return len(e.rw)+len(e.ro) > 0 }

// localLevel is n's grant on e by the configuration's allow lists.
func (e *export) localLevel(n *identity.Node) Level {
	switch {
	case matches(e.rw, n):
		return ReadWrite
	case matches(e.ro, n):
		return ReadOnly
	}
	return None
}

// policyLevel is n's grant on e by the policy's nfs grants.
func policyLevel(g *api.NFSGrants, n *identity.Node, export string) Level {
	switch g.Level(n.Name, export) {
	case api.NFSReadWrite:
		return ReadWrite
	case api.NFSReadOnly:
		return ReadOnly
	}
	return None
}

// levelOf returns n's grant on e under the policy's nfs grants g (nil: the
// policy has no nfs section). With grants, the policy is the ceiling and
// the export's allow lists, when the configuration has them, narrow it;
// without, the allow lists alone decide. A read-only export caps every
// grant at ReadOnly.
func (e *export) levelOf(n *identity.Node, g *api.NFSGrants) Level {
	var l Level
	switch {
	case g == nil:
		l = e.localLevel(n)
	case e.hasAllow():
		l = min(policyLevel(g, n, e.name), e.localLevel(n))
	default:
		l = policyLevel(g, n, e.name)
	}
	if e.readOnly {
		l = min(l, ReadOnly)
	}
	return l
}
