// Package config is the tunnelmesh-sshgw configuration file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"gopkg.in/yaml.v3"
)

// Config is the standalone SSH gateway's configuration.
type Config struct {
	// Listen is the SSH listen address. Default ":2222".
	Listen string `yaml:"listen"`
	// Credentials is the agent's credentials file: its key is the host key,
	// and the allow-set follows the node's netmap. Set this or KeyFile.
	Credentials string `yaml:"credentials"`
	// KeyFile is a node key (OpenSSH ed25519) used without a registry; the
	// allow-set is then AllowKeys.
	KeyFile   string   `yaml:"key_file"`
	AllowKeys []string `yaml:"allow_keys"`
	// ForwardTo is the agent's packet port (a loopback address).
	ForwardTo string `yaml:"forward_to"`
	// IdleTimeout closes silent connections. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	Log         Log           `yaml:"log"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// Default returns the defaults.
func Default() Config {
	return Config{Listen: ":2222", IdleTimeout: 60 * time.Second, Log: Log{Level: "info", Format: "text"}}
}

// MaxFileSize bounds a configuration file.
const MaxFileSize = 1 << 20

// Parse reads a YAML configuration over the defaults. Unknown keys are an
// error that names the key path ("log.colour: unknown key (line 9)").
func Parse(r io.Reader) (Config, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("parse sshgw config: %w", err)
	}
	if len(b) > MaxFileSize {
		return Config{}, fmt.Errorf("parse sshgw config: larger than %d bytes", MaxFileSize)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return Config{}, fmt.Errorf("parse sshgw config: %w", err)
	}
	if err := unknownKey(&doc, reflect.TypeFor[Config](), ""); err != nil {
		return Config{}, fmt.Errorf("parse sshgw config: %w", err)
	}
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse sshgw config: %w", err)
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
		return Config{}, fmt.Errorf("load sshgw config: %w", err)
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
	switch {
	case c.Credentials == "" && c.KeyFile == "":
		return errors.New("credentials: set credentials (follow the netmap) or key_file (fixed allow_keys)")
	case c.Credentials != "" && c.KeyFile != "":
		return errors.New("key_file: set either credentials or key_file, not both")
	case c.Credentials != "" && len(c.AllowKeys) > 0:
		return errors.New("allow_keys: only with key_file; with credentials the netmap decides")
	}
	if c.ForwardTo == "" {
		return errors.New("forward_to: required (the agent's packet port, e.g. 127.0.0.1:7600)")
	}
	ap, err := netip.ParseAddrPort(c.ForwardTo)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("forward_to: %q must be a loopback ip:port", c.ForwardTo)
	}
	if _, err := c.Keys(); err != nil {
		return err
	}
	if c.IdleTimeout < time.Second {
		return fmt.Errorf("idle_timeout: %v, want at least 1s", c.IdleTimeout)
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
