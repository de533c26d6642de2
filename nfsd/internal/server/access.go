package server

import (
	"strings"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/identity"
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

// levelOf returns n's grant on e.
func (e *export) levelOf(n *identity.Node) Level {
	switch {
	case !e.readOnly && matches(e.rw, n):
		return ReadWrite
	case matches(e.ro, n) || matches(e.rw, n):
		return ReadOnly
	}
	return None
}
