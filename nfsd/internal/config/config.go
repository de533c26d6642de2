// Package config is tunnelmesh-nfsd's configuration file: the node
// credentials it watches the netmap with, where it listens, and the exports
// with who may mount them. Unknown keys are errors that name the key path
// (exports[1].allow.red_write); every other error names its key too.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// DefaultPort is NFS's port; MOUNT is served on the same port.
const DefaultPort = 2049

// MaxFileSize bounds the configuration file.
const MaxFileSize = 1 << 20

// Config is the whole file.
type Config struct {
	// Credentials is the node credentials file the agent saved when it
	// joined (as for tunnelmesh-meshdns). A relative key_file inside it is
	// relative to this file.
	Credentials string `yaml:"credentials"`
	// Listen is the address to listen on. Empty (the default) means the
	// node's mesh address from the netmap, once it is known, with Port.
	Listen string `yaml:"listen"`
	// Port is the TCP port of NFS and MOUNT (default 2049).
	Port int `yaml:"port"`
	// Portmap answers the port mapper on port 111 (TCP and UDP) for NFS
	// and MOUNT, so that clients need no port options. Default true; a
	// port 111 already taken is logged and left alone.
	Portmap *bool `yaml:"portmap"`
	// Exports are the directories served.
	Exports []Export `yaml:"exports"`

	// ListenAddr is Listen parsed (zero when Listen is empty).
	ListenAddr netip.Addr `yaml:"-"`
}

// Export is one exported directory.
type Export struct {
	// Name is what clients mount: "/<name>" (nfs://host/<name>).
	Name string `yaml:"name"`
	// Dir is the local directory exported; nothing outside it is reachable.
	Dir string `yaml:"dir"`
	// ReadOnly refuses every write, whatever the grants say.
	ReadOnly bool `yaml:"read_only"`
	// Owner is who files belong to: every client's uid/gid is squashed to
	// it. Default: nobody (65534:65534).
	Owner *Owner `yaml:"owner"`
	// Allow lists who may mount the export. When the policy has an nfs
	// section it can only narrow the policy's grants; without one it is
	// the grant, and an export without it is mounted by nobody.
	Allow Allow `yaml:"allow"`
}

// Nobody is the default owner of an export's files.
const Nobody = 65534

// Owner is a uid/gid pair.
type Owner struct {
	UID int `yaml:"uid"`
	GID int `yaml:"gid"`
}

// Allow lists nodes as node names, "tag:NAME" or "*" (every node of the mesh).
type Allow struct {
	ReadWrite []string `yaml:"read_write"`
	ReadOnly  []string `yaml:"read_only"`
}

// Load reads and validates the configuration file at path.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return Config{}, fmt.Errorf("load config %s: larger than %d bytes", path, MaxFileSize)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	if c.Credentials != "" && !filepath.IsAbs(c.Credentials) {
		c.Credentials = filepath.Join(filepath.Dir(path), c.Credentials)
	}
	return c, nil
}

// Parse parses and validates a configuration document, applying defaults.
func Parse(b []byte) (Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return Config{}, errors.New("parse config: more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	var c Config
	if doc.Kind != 0 {
		if err := checkKeys(&doc, reflect.TypeOf(c), ""); err != nil {
			return Config{}, fmt.Errorf("parse config: %w", err)
		}
		if err := doc.Decode(&c); err != nil {
			return Config{}, fmt.Errorf("parse config: %w", err)
		}
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Portmap == nil {
		on := true
		c.Portmap = &on
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// checkKeys refuses mapping keys that t has no field for, naming the key path.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkKeys(c, t, path); err != nil {
				return err
			}
		}
		return nil
	case yaml.AliasNode:
		return fmt.Errorf("%s: YAML aliases are not supported (line %d)", orRoot(path), n.Line)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // a type error yaml.Decode reports
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" && tag != "-" {
				fields[tag] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			kp := join(path, k)
			ft, ok := fields[k]
			if !ok {
				return fmt.Errorf("%s: unknown key (line %d)", kp, n.Content[i].Line)
			}
			if err := checkKeys(n.Content[i+1], ft, kp); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func orRoot(path string) string {
	if path == "" {
		return "(document)"
	}
	return path
}

// exportName is a mount name: one path component of letters, digits, '.',
// '_' and '-', not starting with '.'.
var exportName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}$`)

// Validate checks every key; errors name the key path.
func (c *Config) Validate() error {
	if c.Credentials == "" {
		return errors.New("credentials: required (the node credentials file the agent saved)")
	}
	if c.Listen != "" {
		a, err := netip.ParseAddr(c.Listen)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("listen: %q: want an IP address (no port, no zone)", c.Listen)
		}
		c.ListenAddr = a
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("port: %d: want 1 to 65535", c.Port)
	}
	if len(c.Exports) == 0 {
		return errors.New("exports: at least one export is required")
	}
	seen := map[string]int{}
	for i := range c.Exports {
		e := &c.Exports[i]
		p := fmt.Sprintf("exports[%d]", i)
		if !exportName.MatchString(e.Name) {
			return fmt.Errorf("%s.name: %q is not a valid export name (letters, digits, '.', '_', '-'; one path component)", p, e.Name)
		}
		if j, dup := seen[e.Name]; dup {
			return fmt.Errorf("%s.name: %q is also exports[%d].name", p, e.Name, j)
		}
		seen[e.Name] = i
		if e.Dir == "" || !filepath.IsAbs(e.Dir) {
			return fmt.Errorf("%s.dir: %q: want an absolute directory", p, e.Dir)
		}
		e.Dir = filepath.Clean(e.Dir)
		if e.Owner == nil {
			e.Owner = &Owner{UID: Nobody, GID: Nobody}
		}
		if e.Owner.UID < 0 || e.Owner.GID < 0 {
			return fmt.Errorf("%s.owner: uid and gid must not be negative", p)
		}
		if e.ReadOnly && len(e.Allow.ReadWrite) > 0 {
			return fmt.Errorf("%s.allow.read_write: the export is read_only; list the nodes under allow.read_only", p)
		}
		for _, l := range []struct {
			key string
			sel []string
		}{{"read_write", e.Allow.ReadWrite}, {"read_only", e.Allow.ReadOnly}} {
			for k, s := range l.sel {
				if err := checkSelector(s); err != nil {
					return fmt.Errorf("%s.allow.%s[%d]: %w", p, l.key, k, err)
				}
			}
		}
	}
	return nil
}

func checkSelector(s string) error {
	if s == "*" {
		return nil
	}
	if name, isTag := strings.CutPrefix(s, "tag:"); isTag {
		if err := api.ValidateTag(name); err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		return nil
	}
	if err := api.ValidateName(s); err != nil {
		return fmt.Errorf("%q: want a node name, tag:NAME or *: %w", s, err)
	}
	return nil
}
