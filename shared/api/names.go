package api

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest node or tag name: one DNS label.
const MaxNameLen = 63

// ValidateName checks that s is a node name: one DNS label (RFC 1123),
// lowercase letters, digits and hyphens, 1 to 63 characters, not starting or
// ending with a hyphen. Names are compared lowercase; callers normalise with
// strings.ToLower before validating.
func ValidateName(s string) error {
	if s == "" {
		return fmt.Errorf("name is empty")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("name %.20q...: longer than %d characters", s, MaxNameLen)
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Errorf("name %q: must not start or end with a hyphen", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("name %q: only lowercase letters, digits and hyphens are allowed", s)
		}
	}
	if IsNodeID(s) {
		return fmt.Errorf("name %q: has the form of a node ID (n and %d hex digits), which names must not have", s, nodeIDHexLen)
	}
	return nil
}

// nodeIDHexLen is the number of hex digits after the "n" of a node ID.
const nodeIDHexLen = 20

// IsNodeID reports whether s has the form of a node ID as the registry
// issues them: "n" followed by 20 lowercase hex digits. Names never have it
// (ValidateName), so a reference to a node by name or ID is unambiguous.
func IsNodeID(s string) bool {
	if len(s) != 1+nodeIDHexLen || s[0] != 'n' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NormalizeName lowercases and trims a node name as users type it.
func NormalizeName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// ValidateTag checks a tag: like a node name, optionally prefixed "tag:".
func ValidateTag(s string) error {
	return ValidateName(strings.TrimPrefix(s, "tag:"))
}

// MaxSelectors bounds the selectors of a Service's Allow.
const MaxSelectors = 16

// ValidateSelectors checks a comma-separated list of policy selectors: "*",
// a node name, "tag:NAME" or "group:NAME"; empty items are not allowed.
func ValidateSelectors(s string) error {
	items := strings.Split(s, ",")
	if len(items) > MaxSelectors {
		return fmt.Errorf("%d selectors, at most %d allowed", len(items), MaxSelectors)
	}
	for _, it := range items {
		if it == "*" {
			continue
		}
		name := it
		if kind, rest, ok := strings.Cut(it, ":"); ok {
			if kind != "tag" && kind != "group" {
				return fmt.Errorf("selector %.40q: want *, a node name, tag:NAME or group:NAME", it)
			}
			name = rest
		}
		if err := ValidateName(name); err != nil {
			return fmt.Errorf("selector %.40q: %v", it, err)
		}
	}
	return nil
}
