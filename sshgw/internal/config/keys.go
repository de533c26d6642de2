package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// unknownKey returns an error naming the path of the first key in n that
// has no field with that yaml tag in t: "tls.hostz: unknown key (line 14)",
// "allow_keys[2].x: ...". Keys of maps and values of scalar fields are not
// checked here; decoding checks their types.
//
// relay/internal/config/keys.go is the same walker: it works on yaml.v3's nodes, and shared (the
// only package both modules import) depends on the standard library and
// golang.org/x alone, so each module keeps its copy.
func unknownKey(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := unknownKey(c, t, path); err != nil {
				return err
			}
		}
	case yaml.AliasNode:
		if n.Alias != nil {
			return unknownKey(n.Alias, t, path)
		}
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return nil
		}
		for i, c := range n.Content {
			if err := unknownKey(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		if t.Kind() != reflect.Struct {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			f, ok := fieldByTag(t, k.Value)
			if !ok {
				return fmt.Errorf("%s: unknown key (line %d)", p, k.Line)
			}
			if err := unknownKey(v, f.Type, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// fieldByTag finds the field of struct type t whose yaml tag names key.
func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if f.IsExported() && name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
