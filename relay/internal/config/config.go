// Package config is the tunnelmesh-relay configuration file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/relaywire"
	"gopkg.in/yaml.v3"
)

// Config is the relay's configuration. Zero fields take the defaults below.
type Config struct {
	// Listen is the TCP address the relay serves HTTPS on. Default ":443".
	Listen string `yaml:"listen"`
	// Path is the HTTP path of the WebSocket endpoint. Default "/relay".
	Path string `yaml:"path"`
	// ID is the relay's identity in its challenges. Default: the host name.
	ID  string `yaml:"id"`
	TLS TLS    `yaml:"tls"`
	// Metrics is the address of the plain-HTTP Prometheus endpoint
	// (/metrics); empty disables it.
	Metrics string `yaml:"metrics"`
	// AllowKeys restricts the relay to these node keys (authorized_keys
	// lines); empty admits every node that proves its key.
	AllowKeys []string `yaml:"allow_keys"`
	// QueueLen is each connection's send queue length in frames.
	QueueLen int `yaml:"queue_len"`
	// SocketBuffer is the TCP send/receive buffer size in bytes.
	SocketBuffer int `yaml:"socket_buffer"`
	Log          Log `yaml:"log"`
}

// TLS selects the certificate. With Cert and Key empty the relay uses a
// self-signed certificate kept in StateDir, and logs its pin.
type TLS struct {
	Cert     string   `yaml:"cert"`
	Key      string   `yaml:"key"`
	StateDir string   `yaml:"state_dir"` // default /var/lib/tunnelmesh-relay
	Hosts    []string `yaml:"hosts"`     // names/IPs in the self-signed certificate
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// Default returns the configuration with every default filled in.
func Default() Config {
	return Config{
		Listen: ":443", Path: "/relay",
		TLS:      TLS{StateDir: "/var/lib/tunnelmesh-relay"},
		QueueLen: 256, SocketBuffer: 1 << 20,
		Log: Log{Level: "info", Format: "text"},
	}
}

// MaxFileSize bounds a configuration file.
const MaxFileSize = 1 << 20

// Parse reads a YAML configuration over the defaults. Unknown keys are an
// error that names the key path ("tls.hostz: unknown key (line 14)").
func Parse(r io.Reader) (Config, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("parse relay config: %w", err)
	}
	if len(b) > MaxFileSize {
		return Config{}, fmt.Errorf("parse relay config: larger than %d bytes", MaxFileSize)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return Config{}, fmt.Errorf("parse relay config: %w", err)
	}
	if err := unknownKey(&doc, reflect.TypeFor[Config](), ""); err != nil {
		return Config{}, fmt.Errorf("parse relay config: %w", err)
	}
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse relay config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Load reads the configuration file at path.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load relay config: %w", err)
	}
	c, err := Parse(bytes.NewReader(b))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate checks c; errors name the key.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port", c.Listen)
	}
	if !strings.HasPrefix(c.Path, "/") {
		return fmt.Errorf("path: %q must start with /", c.Path)
	}
	if c.ID != "" {
		if err := relaywire.ValidRelayID(c.ID); err != nil {
			return fmt.Errorf("id: %w", err)
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return errors.New("tls: set both cert and key, or neither for a self-signed certificate")
	}
	if c.TLS.Cert == "" && c.TLS.StateDir == "" {
		return errors.New("tls.state_dir: required for a self-signed certificate")
	}
	if c.Metrics != "" {
		if _, _, err := net.SplitHostPort(c.Metrics); err != nil {
			return fmt.Errorf("metrics: %q is not host:port", c.Metrics)
		}
	}
	if _, err := c.Keys(); err != nil {
		return err
	}
	if c.QueueLen < 1 || c.QueueLen > 65536 {
		return fmt.Errorf("queue_len: %d, want 1..65536", c.QueueLen)
	}
	if c.SocketBuffer < 4096 || c.SocketBuffer > 64<<20 {
		return fmt.Errorf("socket_buffer: %d, want 4096..67108864", c.SocketBuffer)
	}
	return nil
}

// Keys parses AllowKeys.
func (c Config) Keys() ([]nodekey.PublicKey, error) {
	keys := make([]nodekey.PublicKey, 0, len(c.AllowKeys))
	for i, s := range c.AllowKeys {
		k, err := nodekey.ParsePublicKey(s)
		if err != nil {
			return nil, fmt.Errorf("allow_keys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
