// Package config holds tunnelmesh-storage's configuration file: a YAML
// document whose every key is optional, with defaults, and whose unknown keys
// are an error naming the key path ("weed.volume_mx: unknown key").
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults.
const (
	DefaultDataDir     = "/var/lib/tunnelmesh/storage"
	DefaultCredentials = "/var/lib/tunnelmesh/credentials.json"
	DefaultS3Port      = 9000
	DefaultAuthPort    = 9001
	DefaultMetricsPort = 9104
	DefaultRegion      = "us-east-1"
	DefaultBucket      = "mesh"
	DefaultVolumeMax   = 64
	DefaultVolumeMB    = 1024
	DefaultMaxBackoff  = 30 * time.Second
)

// MaxFileSize bounds the configuration file.
const MaxFileSize = 1 << 20

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("want a duration like \"30s\", got %q", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Config is tunnelmesh-storage's configuration.
type Config struct {
	// Credentials is the agent's credentials file (the node the storage
	// service runs as); its netmap says who is a member.
	Credentials string `yaml:"credentials"`
	// DataDir holds SeaweedFS's data, the issued S3 credentials and the
	// generated identities file.
	DataDir string `yaml:"data_dir"`
	// Listen is the address S3 and the credentials API bind to: "mesh" (the
	// node's mesh address from its netmap, the default) or an IP address.
	Listen string `yaml:"listen"`
	// S3Port serves S3; AuthPort the credentials API and /healthz;
	// MetricsPort /metrics (a port of its own, so that the policy can open
	// it to monitoring nodes only).
	S3Port      uint16 `yaml:"s3_port"`
	AuthPort    uint16 `yaml:"auth_port"`
	MetricsPort uint16 `yaml:"metrics_port"`
	// Region is the AWS region clients are told to use.
	Region string `yaml:"region"`
	// Buckets are created at start; every member may read, write and list
	// them.
	Buckets []string `yaml:"buckets"`
	// Weed configures the supervised SeaweedFS server.
	Weed WeedConfig `yaml:"weed"`
}

// WeedConfig configures the `weed server` child process.
type WeedConfig struct {
	// Binary is the weed executable; a bare name is looked up in PATH.
	Binary string `yaml:"binary"`
	// VolumeMax is the number of volumes the volume server may hold; each
	// bucket takes several, so a small number allows only one bucket.
	VolumeMax int `yaml:"volume_max"`
	// VolumeSizeMB is the size at which a volume is full.
	VolumeSizeMB int `yaml:"volume_size_mb"`
	// MetricsListen is where SeaweedFS serves Prometheus metrics, a
	// loopback IP:PORT; tunnelmesh-storage adds its SeaweedFS_* series to
	// its own /metrics. Empty disables them.
	MetricsListen string `yaml:"metrics_listen"`
	// MaxBackoff bounds the wait between restarts after crashes.
	MaxBackoff Duration `yaml:"max_backoff"`
}

// Default returns the configuration of an empty file.
func Default() Config {
	var c Config
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	if c.Credentials == "" {
		c.Credentials = DefaultCredentials
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Listen == "" {
		c.Listen = "mesh"
	}
	if c.S3Port == 0 {
		c.S3Port = DefaultS3Port
	}
	if c.AuthPort == 0 {
		c.AuthPort = DefaultAuthPort
	}
	if c.MetricsPort == 0 {
		c.MetricsPort = DefaultMetricsPort
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Buckets == nil {
		c.Buckets = []string{DefaultBucket}
	}
	if c.Weed.Binary == "" {
		c.Weed.Binary = "weed"
	}
	if c.Weed.VolumeMax == 0 {
		c.Weed.VolumeMax = DefaultVolumeMax
	}
	if c.Weed.VolumeSizeMB == 0 {
		c.Weed.VolumeSizeMB = DefaultVolumeMB
	}
	if c.Weed.MaxBackoff == 0 {
		c.Weed.MaxBackoff = Duration(DefaultMaxBackoff)
	}
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
	return c, nil
}

// Parse parses and validates a configuration document, applying defaults.
func Parse(b []byte) (Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse config: more than one YAML document")
	}
	var c Config
	if len(root.Content) > 0 {
		doc := root.Content[0]
		if err := checkKeys(doc, reflect.TypeOf(c), ""); err != nil {
			return Config{}, fmt.Errorf("parse config: %w", err)
		}
		if err := decodeFields(doc, reflect.ValueOf(&c).Elem(), ""); err != nil {
			return Config{}, fmt.Errorf("parse config: %w", err)
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// checkKeys reports the first key of n (a mapping) that has no field in t,
// by its path, recursing into struct-valued fields.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s: want a mapping", n.Line, pathOr(path))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fieldByTag(t, k.Value)
		p := join(path, k.Value)
		if !ok {
			return fmt.Errorf("line %d: %s: unknown key", k.Line, p)
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
			if err := checkKeys(v, f.Type, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodeFields decodes each key of n into its field of v, naming the key
// path of a value of the wrong type.
func decodeFields(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		f, _ := fieldByTag(v.Type(), k.Value)
		p := join(path, k.Value)
		fv := v.FieldByIndex(f.Index)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
			if err := decodeFields(val, fv, p); err != nil {
				return err
			}
			continue
		}
		if err := val.Decode(fv.Addr().Interface()); err != nil {
			msg := err.Error()
			if te := (*yaml.TypeError)(nil); errors.As(err, &te) {
				msg = strings.Join(te.Errors, "; ")
			}
			return fmt.Errorf("line %d: %s: %s", val.Line, p, msg)
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func pathOr(p string) string {
	if p == "" {
		return "document"
	}
	return p
}

// Validate checks every key; errors name the key.
func (c *Config) Validate() error {
	if c.Listen != "mesh" {
		a, err := netip.ParseAddr(c.Listen)
		if err != nil || a.IsUnspecified() {
			return fmt.Errorf("listen: %q: want \"mesh\" or one IP address (never 0.0.0.0: nothing may listen on the underlay)", c.Listen)
		}
	}
	if c.S3Port == c.AuthPort {
		return fmt.Errorf("auth_port: %d: the same as s3_port", c.AuthPort)
	}
	if int(c.S3Port)+10000 > 65535 {
		return fmt.Errorf("s3_port: %d: SeaweedFS also opens port+10000 for gRPC, which must be below 65536", c.S3Port)
	}
	switch c.MetricsPort {
	case c.S3Port, c.AuthPort, c.S3Port + 10000:
		return fmt.Errorf("metrics_port: %d: already used by s3_port, auth_port or S3's gRPC port (s3_port+10000)", c.MetricsPort)
	}
	if strings.TrimSpace(c.Region) == "" {
		return fmt.Errorf("region: empty")
	}
	for i, b := range c.Buckets {
		if err := ValidateBucket(b); err != nil {
			return fmt.Errorf("buckets[%d]: %w", i, err)
		}
	}
	if c.Weed.VolumeMax < 0 {
		return fmt.Errorf("weed.volume_max: %d: negative", c.Weed.VolumeMax)
	}
	if c.Weed.VolumeSizeMB < 0 || c.Weed.VolumeSizeMB > 30000 {
		return fmt.Errorf("weed.volume_size_mb: %d: want 1 to 30000", c.Weed.VolumeSizeMB)
	}
	if c.Weed.MetricsListen != "" {
		ap, err := netip.ParseAddrPort(c.Weed.MetricsListen)
		if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
			return fmt.Errorf("weed.metrics_listen: %q: want a loopback IP:PORT (tunnelmesh-storage serves SeaweedFS's metrics on its own /metrics)", c.Weed.MetricsListen)
		}
	}
	if c.Weed.MaxBackoff < Duration(time.Second) {
		return fmt.Errorf("weed.max_backoff: %s: want at least 1s", time.Duration(c.Weed.MaxBackoff))
	}
	return nil
}

// ValidateBucket checks an S3 bucket name: 3 to 63 lowercase letters,
// digits, hyphens and dots, starting and ending with a letter or digit.
func ValidateBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket %q: want 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		ch := b[i]
		alnum := (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
		if !alnum && ((ch != '-' && ch != '.') || i == 0 || i == len(b)-1) {
			return fmt.Errorf("bucket %q: only lowercase letters, digits, '-' and '.', starting and ending with a letter or digit", b)
		}
	}
	return nil
}
