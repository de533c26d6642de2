// Package config is the tunnelmesh-dockerwatch configuration file: a typed
// YAML document whose every key is optional, whose unknown keys are refused
// with their key path, and whose values are checked by Validate.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Config is dockerwatch's configuration. Zero fields take the defaults below.
type Config struct {
	Docker Docker `yaml:"docker"`
	Agent  Agent  `yaml:"agent"`
	// AutoPublish also exposes every container that publishes host ports on a
	// bridge network (its published container ports), not only containers
	// labelled tunnelmesh.expose.
	AutoPublish bool `yaml:"auto_publish"`
	// ResyncInterval is how often the full container list is reconciled even
	// without events (a safety net under the event stream).
	ResyncInterval time.Duration `yaml:"resync_interval"`
	// Metrics is where the plain-HTTP Prometheus endpoint (/metrics)
	// listens: "mesh:PORT" (the node's mesh address, read from the agent,
	// and published as the service metrics-dockerwatch; the default
	// mesh:9103), HOST:PORT, or "off" (or empty) for none.
	Metrics string `yaml:"metrics"`
	Log     Log    `yaml:"log"`
}

// Docker says how to reach the engine.
type Docker struct {
	// Host is the engine's address, as DOCKER_HOST. Default
	// unix:///var/run/docker.sock.
	Host string `yaml:"host"`
}

// Agent says how to reach the node's local API.
type Agent struct {
	// Socket is the agent's local API socket (tunnelmesh.sock in its state
	// directory). Default /var/lib/tunnelmesh/tunnelmesh.sock.
	Socket string `yaml:"socket"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// Default returns the configuration with every default filled in.
func Default() Config {
	return Config{
		Docker:         Docker{Host: "unix:///var/run/docker.sock"},
		Agent:          Agent{Socket: "/var/lib/tunnelmesh/tunnelmesh.sock"},
		ResyncInterval: time.Minute,
		Metrics:        MetricsOnMesh + strconv.Itoa(api.DockerwatchMetricsPort),
		Log:            Log{Level: "info", Format: "text"},
	}
}

// Parse reads a YAML configuration over the defaults. Unknown keys are an
// error naming their key path.
func Parse(r io.Reader) (Config, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Config{}, fmt.Errorf("parse dockerwatch config: %w", err)
	}
	c := Default()
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return Config{}, fmt.Errorf("parse dockerwatch config: %w", err)
	}
	if len(doc.Content) == 0 {
		return c, c.Validate()
	}
	if err := checkKeys(doc.Content[0], reflect.TypeOf(c), ""); err != nil {
		return Config{}, fmt.Errorf("parse dockerwatch config: %w", err)
	}
	if err := doc.Content[0].Decode(&c); err != nil {
		return Config{}, fmt.Errorf("parse dockerwatch config: %w", err)
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
		return Config{}, fmt.Errorf("load dockerwatch config: %w", err)
	}
	c, err := Parse(bytes.NewReader(b))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// checkKeys refuses mapping keys of n that t (a struct) has no yaml field
// for, naming the key's full path and line.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
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
			return fmt.Errorf("line %d: %s: unknown key", k.Line, p)
		}
		if err := checkKeys(v, f.Type, p); err != nil {
			return err
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// MetricsOnMesh is the prefix of Config.Metrics that means the node's mesh
// address.
const MetricsOnMesh = "mesh:"

// MetricsListen returns where /metrics listens: a port on the node's mesh
// address in meshPort, or Metrics itself (HOST:PORT) in addr; neither when
// off.
func (c Config) MetricsListen() (addr string, meshPort uint16, err error) {
	switch {
	case c.Metrics == "" || c.Metrics == "off":
		return "", 0, nil
	case strings.HasPrefix(c.Metrics, MetricsOnMesh):
		p, perr := strconv.ParseUint(strings.TrimPrefix(c.Metrics, MetricsOnMesh), 10, 16)
		if perr != nil || p == 0 {
			return "", 0, fmt.Errorf("metrics: %q: want mesh:PORT with PORT 1-65535", c.Metrics)
		}
		return "", uint16(p), nil
	}
	if _, _, err := net.SplitHostPort(c.Metrics); err != nil {
		return "", 0, fmt.Errorf("metrics: %q is not mesh:PORT, host:port or off", c.Metrics)
	}
	return c.Metrics, 0, nil
}

// Validate checks c; errors name the key.
func (c Config) Validate() error {
	if c.Docker.Host == "" {
		return errors.New("docker.host: required")
	}
	if !strings.Contains(c.Docker.Host, "://") {
		return fmt.Errorf("docker.host: %q is not a URL (unix:///var/run/docker.sock, tcp://host:2375)", c.Docker.Host)
	}
	if c.Agent.Socket == "" {
		return errors.New("agent.socket: required")
	}
	if c.ResyncInterval < time.Second || c.ResyncInterval > 24*time.Hour {
		return fmt.Errorf("resync_interval: %s, want 1s..24h", c.ResyncInterval)
	}
	if _, _, err := c.MetricsListen(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q, want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format: %q, want text or json", c.Log.Format)
	}
	return nil
}
