package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Parse reads and checks a policy file: its syntax, that every key is
// known, that every group and tag it names is defined, that groups do not
// form a cycle and that ports and protocols make sense. It does not run the
// tests (see Policy.Check). file names the file in errors and may be empty.
// On failure the error is an Errors listing every problem found.
func Parse(file string, data []byte) (pol *Policy, err error) {
	if len(data) > MaxFileBytes {
		return nil, Errors{{File: file, Msg: fmt.Sprintf("policy is %d bytes, more than the limit of %d", len(data), MaxFileBytes)}}
	}
	root, err := decodeYAML(data)
	if err != nil {
		line, msg := yamlErrLine(err)
		if strings.Contains(msg, "did not find expected alphabetic or numeric character") {
			msg += ` (a bare * starts a YAML alias: write "*" in quotes)`
		}
		return nil, Errors{{File: file, Line: line, Msg: msg}}
	}
	ps := &parser{file: file}
	pol = ps.policy(root)
	if len(ps.errs) > 0 {
		slices.SortStableFunc(ps.errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, ps.errs
	}
	pol.file = file
	return pol, nil
}

// decodeYAML parses exactly one YAML document. yaml.v3 is not known to
// panic on any input, but the policy arrives over the admin API, so a panic
// is turned into an error rather than trusted not to happen.
func decodeYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("policy is empty")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("yaml: line %d: more than one YAML document", extra.Line)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("policy is empty")
	}
	return doc.Content[0], nil
}

// yamlErrLine splits a yaml.v3 error ("yaml: line 3: msg") into line and
// message.
func yamlErrLine(err error) (int, string) {
	s := err.Error()
	rest, ok := strings.CutPrefix(s, "yaml: line ")
	if !ok {
		return 0, s
	}
	num, msg, ok := strings.Cut(rest, ": ")
	n, err2 := strconv.Atoi(num)
	if !ok || err2 != nil {
		return 0, s
	}
	return n, msg
}

type parser struct {
	file         string
	errs         Errors
	declaredTags map[string]bool
	groupNames   map[string]bool
}

func (ps *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	ps.errs = append(ps.errs, &Error{File: ps.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// field is one key of a mapping.
type field struct {
	key *yaml.Node
	val *yaml.Node
}

// mapping checks that n is a mapping with unique keys among known (all
// keys when known is nil) and returns its fields by key.
func (ps *parser) mapping(n *yaml.Node, path string, known ...string) (map[string]field, []string, bool) {
	if n.Kind == yaml.AliasNode {
		ps.errorf(n, path, "YAML aliases are not supported")
		return nil, nil, false
	}
	if n.Kind != yaml.MappingNode {
		ps.errorf(n, path, "must be a mapping, not %s", kindName(n))
		return nil, nil, false
	}
	fields := make(map[string]field, len(n.Content)/2)
	var order []string
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			ps.errorf(k, path, "keys must be plain strings")
			ok = false
			continue
		}
		if k.Value == "<<" {
			ps.errorf(k, path, "YAML merge keys are not supported")
			ok = false
			continue
		}
		if known != nil && !slices.Contains(known, k.Value) {
			ps.errorf(k, kp, "unknown key (known keys: %s)", strings.Join(known, ", "))
			ok = false
			continue
		}
		if _, dup := fields[k.Value]; dup {
			ps.errorf(k, kp, "duplicate key")
			ok = false
			continue
		}
		fields[k.Value] = field{k, v}
		order = append(order, k.Value)
	}
	return fields, order, ok
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "unknown"
}

// scalar returns n's value when n is a non-empty scalar.
func (ps *parser) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		ps.errorf(n, path, "must be a value, not %s", kindName(n))
		return "", false
	}
	v := strings.TrimSpace(n.Value)
	if v == "" {
		ps.errorf(n, path, "must not be empty")
		return "", false
	}
	return v, true
}

// list returns the items of a sequence, or n itself when it is a single
// scalar and single is true (so "proto: tcp" reads like "proto: [tcp]").
func (ps *parser) list(n *yaml.Node, path string, single bool) ([]*yaml.Node, bool) {
	switch {
	case n.Kind == yaml.SequenceNode:
		return n.Content, true
	case single && n.Kind == yaml.ScalarNode && n.Tag != "!!null":
		return []*yaml.Node{n}, true
	case n.Kind == yaml.AliasNode:
		ps.errorf(n, path, "YAML aliases are not supported")
	default:
		ps.errorf(n, path, "must be a list, not %s", kindName(n))
	}
	return nil, false
}

// itemPath names the i-th item of a list that may have been a single value.
func itemPath(n *yaml.Node, path string, i int) string {
	if n.Kind == yaml.SequenceNode {
		return index(path, i)
	}
	return path
}

func (ps *parser) policy(root *yaml.Node) *Policy {
	pol := &Policy{}
	f, _, _ := ps.mapping(root, "", "groups", "tags", "rules", "tests", "test_nodes", "docker", "storage", "nfs")
	if f == nil {
		return pol
	}
	ps.declaredTags = map[string]bool{}
	if fl, ok := f["tags"]; ok {
		pol.Tags = ps.tags(fl.val, "tags")
		for _, t := range pol.Tags {
			ps.declaredTags[t] = true
		}
	}
	// Group names first, so groups may name groups defined below them.
	ps.groupNames = map[string]bool{}
	if fl, ok := f["groups"]; ok && fl.val.Kind == yaml.MappingNode {
		for i := 0; i < len(fl.val.Content); i += 2 {
			ps.groupNames[strings.ToLower(strings.TrimPrefix(fl.val.Content[i].Value, "group:"))] = true
		}
	}
	if fl, ok := f["groups"]; ok {
		pol.Groups = ps.groups(fl.val, "groups")
	}
	ps.resolveGroups(pol)
	if fl, ok := f["rules"]; ok {
		pol.Rules = ps.rules(pol, fl.val, "rules")
	}
	if fl, ok := f["docker"]; ok {
		pol.Docker = ps.docker(pol, fl.val, "docker")
	}
	if fl, ok := f["storage"]; ok {
		pol.Storage = ps.storage(pol, fl.val, "storage")
	}
	if fl, ok := f["nfs"]; ok {
		pol.NFS = ps.nfs(pol, fl.val, "nfs")
	}
	if fl, ok := f["test_nodes"]; ok {
		pol.TestNodes = ps.testNodes(fl.val, "test_nodes")
	}
	if fl, ok := f["tests"]; ok {
		pol.Tests = ps.tests(pol, fl.val, "tests")
	}
	return pol
}

func (ps *parser) tags(n *yaml.Node, path string) []string {
	items, ok := ps.list(n, path, false)
	if !ok {
		return nil
	}
	var tags []string
	seen := map[string]bool{}
	for i, it := range items {
		p := index(path, i)
		v, ok := ps.scalar(it, p)
		if !ok {
			continue
		}
		t := normTag(v)
		if err := api.ValidateName(t); err != nil {
			ps.errorf(it, p, "invalid tag: %v", err)
			continue
		}
		if seen[t] {
			ps.errorf(it, p, "tag %q declared twice", t)
			continue
		}
		seen[t] = true
		tags = append(tags, t)
	}
	return tags
}

func (ps *parser) groups(n *yaml.Node, path string) []Group {
	seen := map[string]bool{}
	f, order, _ := ps.mapping(n, path)
	var groups []Group
	for _, name := range order {
		fl := f[name]
		p := join(path, name)
		gname := strings.ToLower(strings.TrimPrefix(name, "group:"))
		if err := api.ValidateName(gname); err != nil {
			ps.errorf(fl.key, p, "invalid group name: %v", err)
			continue
		}
		if seen[gname] {
			ps.errorf(fl.key, p, "group %q defined twice", gname)
			continue
		}
		seen[gname] = true
		g := Group{Name: gname, Line: fl.key.Line}
		items, ok := ps.list(fl.val, p, false)
		if !ok {
			continue
		}
		for i, it := range items {
			if s, ok := ps.selector(it, index(p, i)); ok {
				g.Members = append(g.Members, s)
			}
		}
		groups = append(groups, g)
	}
	return groups
}

// selector parses "*", "NODE", "tag:NAME" or "group:NAME". It checks the
// syntax only; checker.resolve checks that tags and groups exist.
func (ps *parser) selector(n *yaml.Node, path string) (Selector, bool) {
	v, ok := ps.scalar(n, path)
	if !ok {
		return Selector{}, false
	}
	if v == "*" {
		return Selector{Kind: SelectAll}, true
	}
	kind, name := SelectNode, v
	if i := strings.IndexByte(v, ':'); i >= 0 {
		switch strings.ToLower(v[:i]) {
		case "tag":
			kind = SelectTag
		case "group":
			kind = SelectGroup
		default:
			ps.errorf(n, path, "invalid selector %q: want *, a node name, tag:NAME or group:NAME", v)
			return Selector{}, false
		}
		name = v[i+1:]
	}
	name = strings.ToLower(strings.TrimSpace(name))
	if err := api.ValidateName(name); err != nil {
		ps.errorf(n, path, "invalid selector %q: %v", v, err)
		return Selector{}, false
	}
	switch {
	case kind == SelectTag && !ps.declaredTags[name]:
		ps.errorf(n, path, "tag %q is not declared under tags", name)
		return Selector{}, false
	case kind == SelectGroup && !ps.groupNames[name]:
		ps.errorf(n, path, "group %q is not defined under groups", name)
		return Selector{}, false
	}
	return Selector{Kind: kind, Name: name}, true
}
