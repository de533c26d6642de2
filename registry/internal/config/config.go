// Package config holds the registry's configuration file: a YAML document
// whose every key is optional (an empty file is valid) and whose unknown keys
// are an error naming the key path.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
)

// Defaults.
const (
	DefaultListen             = ":8443"
	DefaultSTUNListen         = ":3478"
	DefaultDataDir            = "/var/lib/tunnelmesh/registry"
	DefaultDNSZone            = "mesh"
	DefaultTokenExpiry        = 24 * time.Hour
	DefaultOnlineTimeout      = 90 * time.Second
	DefaultReplicaExpiry      = 10 * time.Minute
	DefaultJoinFailuresPerMin = 30
	DefaultJoinFailureBurst   = 10
	DefaultRequestBodyTimeout = 30 * time.Second
	DefaultMaxConnsPerSource  = 1024
	// DefaultPSKRotationOverlap: see server.DefaultPSKOverlap.
	DefaultPSKRotationOverlap = 5 * time.Minute
	MinPSKRotationOverlap     = 30 * time.Second
	MaxPSKRotationOverlap     = 24 * time.Hour
)

// Store kinds (the store key).
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// MaxFileSize bounds the configuration file.
const MaxFileSize = 1 << 20

// Duration is a time.Duration written as a Go duration string ("24h") in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration like \"24h\"")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("want a duration like \"24h\": %q", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Config is the registry's configuration.
type Config struct {
	// Listen is the HTTPS API's TCP address.
	Listen string `yaml:"listen"`
	// PublicURL is how nodes reach the API (https://host:port); shown in
	// logs and used for the self-signed certificate's names. Optional.
	PublicURL string `yaml:"public_url"`
	// DataDir holds the database, the admin credential and the generated
	// TLS certificate.
	DataDir string `yaml:"data_dir"`
	// Store is where the registry's state lives: "sqlite" (the default,
	// registry.db in DataDir, one registry) or "postgres" (PostgresDSN,
	// shared by several registry replicas).
	Store string `yaml:"store"`
	// PostgresDSN is the PostgreSQL database of store: postgres
	// (postgres://user@host:5432/db?sslmode=verify-full, or key=value
	// form). A secret when it holds a password: give the password in
	// PostgresPasswordFile or the environment (PGPASSWORD) instead.
	PostgresDSN string `yaml:"postgres_dsn"`
	// PostgresPasswordFile holds the database password (first line); it
	// replaces the DSN's password, which must then be empty.
	PostgresPasswordFile string `yaml:"postgres_password_file"`
	// MeshCIDR is the IPv4 prefix node addresses come from.
	MeshCIDR string `yaml:"mesh_cidr"`
	// STUNListen is the STUN responder's UDP address; "off" disables it.
	STUNListen string `yaml:"stun_listen"`
	// TLSCert and TLSKey are PEM files; both or neither. Without them a
	// self-signed certificate is created in DataDir.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TokenDefaultExpiry is the lifetime of join tokens created without one.
	TokenDefaultExpiry Duration `yaml:"token_default_expiry"`
	// OnlineTimeout: a node not heard from for this long is offline.
	OnlineTimeout Duration `yaml:"online_timeout"`
	// ReplicaExpiry (store: postgres): a replica that has not refreshed its
	// API URL and relay in the store for this long is no longer listed in
	// netmaps; each replica refreshes its own every quarter of it.
	ReplicaExpiry Duration `yaml:"replica_expiry"`
	// PSKRotationOverlap: removing a node rotates the mesh PSK; for this
	// long afterwards the previous PSK is still accepted, so nodes that
	// have not fetched the new netmap yet keep connecting (30s to 24h).
	PSKRotationOverlap Duration `yaml:"psk_rotation_overlap"`
	// DNSZone is the mesh's DNS zone (node.<zone>).
	DNSZone string `yaml:"dns_zone"`
	// JoinFailuresPerMinute and JoinFailureBurst limit failed join attempts
	// per source IP (token brute force); a source over the limit gets 429.
	JoinFailuresPerMinute int `yaml:"join_failures_per_minute"`
	JoinFailureBurst      int `yaml:"join_failure_burst"`
	// RequestBodyTimeout bounds the time a client may take to send a
	// request body (from the end of its header).
	RequestBodyTimeout Duration `yaml:"request_body_timeout"`
	// MaxConnsPerSource caps the open connections of one source address
	// (nodes behind one NAT share it: each node holds about three).
	MaxConnsPerSource int `yaml:"max_conns_per_source"`
	// PolicyFile is a policy file (registry/policy/README.md) stored as the
	// mesh's first policy version when the data directory holds none yet;
	// later changes go through `tunnelmesh policy apply`. Empty: the
	// built-in default policy (policy.DefaultYAML) is in force until one is
	// applied.
	PolicyFile string `yaml:"policy_file"`
	// BootstrapTokenFile, when set, receives a reusable join token that
	// never expires (mode 0600), created at start when the file does not
	// exist yet: unattended first starts (docker compose) where nodes join
	// with `tunnelmesh join --token-file`. Revoke it when done.
	BootstrapTokenFile string `yaml:"bootstrap_token_file"`
	// BootstrapTokens are further bootstrap tokens like BootstrapTokenFile,
	// each written to its own file and carrying tags, e.g. a token tagged
	// dns for the node that serves mesh DNS.
	BootstrapTokens []BootstrapToken `yaml:"bootstrap_tokens"`
	// ScrapeTokenFile, when set, receives a Prometheus scrape token for
	// the service discovery endpoint (mode 0600), created at start when
	// the file does not exist yet, and beside it registry.crt, the
	// certificate Prometheus is to trust (rewritten at every start).
	ScrapeTokenFile string `yaml:"scrape_token_file"`
	// Relay configures the WebSocket relay the coordinator serves at
	// /relay and the relays listed in every netmap.
	Relay RelayConfig `yaml:"relay"`
	// LogLevel is debug, info, warn or error; LogFormat text or json.
	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`
}

// DefaultRelayID is the identity of the coordinator's own relay.
const DefaultRelayID = "coordinator"

// RelayConfig is the relay section.
type RelayConfig struct {
	// Disabled turns the coordinator's own relay off.
	Disabled bool `yaml:"disabled"`
	// ID is the coordinator relay's identity (signed by nodes).
	ID string `yaml:"id"`
	// PublicURL is how nodes reach the coordinator's relay
	// (wss://host:port/relay). Empty: derived from public_url, or, without
	// that, by each node from the coordinator URL it joined with.
	PublicURL string `yaml:"public_url"`
	// Extra are standalone relays (tunnelmesh-relay) listed in every
	// netmap besides the coordinator's.
	Extra []ExtraRelay `yaml:"extra"`
}

// ExtraRelay is a standalone relay of the relay.extra list.
type ExtraRelay struct {
	ID     string `yaml:"id"`
	URL    string `yaml:"url"`
	TLSPin string `yaml:"tls_pin"` // empty: the system roots
}

// Relays returns the extra relays as netmap entries.
func (r *RelayConfig) Relays() []api.Relay {
	out := make([]api.Relay, 0, len(r.Extra))
	for _, x := range r.Extra {
		out = append(out, api.Relay{ID: x.ID, URL: x.URL, TLSPin: x.TLSPin})
	}
	return out
}

// Default returns the configuration of an empty file.
func Default() Config {
	c := Config{}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	def := func(s *string, v string) {
		if strings.TrimSpace(*s) == "" {
			*s = v
		}
	}
	def(&c.Listen, DefaultListen)
	def(&c.DataDir, DefaultDataDir)
	def(&c.MeshCIDR, meshnet.DefaultCIDR.String())
	def(&c.Store, StoreSQLite)
	def(&c.STUNListen, DefaultSTUNListen)
	def(&c.DNSZone, DefaultDNSZone)
	def(&c.LogLevel, "info")
	def(&c.Relay.ID, DefaultRelayID)
	if len(c.Relay.Extra) == 0 {
		c.Relay.Extra = nil // "extra: []" is the default
	}
	if len(c.BootstrapTokens) == 0 {
		c.BootstrapTokens = nil // likewise "bootstrap_tokens: []"
	}
	def(&c.LogFormat, "text")
	if c.TokenDefaultExpiry == 0 {
		c.TokenDefaultExpiry = Duration(DefaultTokenExpiry)
	}
	if c.OnlineTimeout == 0 {
		c.OnlineTimeout = Duration(DefaultOnlineTimeout)
	}
	if c.PSKRotationOverlap == 0 {
		c.PSKRotationOverlap = Duration(DefaultPSKRotationOverlap)
	}
	if c.ReplicaExpiry == 0 {
		c.ReplicaExpiry = Duration(DefaultReplicaExpiry)
	}
	if c.JoinFailuresPerMinute == 0 {
		c.JoinFailuresPerMinute = DefaultJoinFailuresPerMin
	}
	if c.JoinFailureBurst == 0 {
		c.JoinFailureBurst = DefaultJoinFailureBurst
	}
	if c.RequestBodyTimeout == 0 {
		c.RequestBodyTimeout = Duration(DefaultRequestBodyTimeout)
	}
	if c.MaxConnsPerSource == 0 {
		c.MaxConnsPerSource = DefaultMaxConnsPerSource
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
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse config: %s", yamlError(err))
	}
	// A second document is almost certainly a mistake.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return Config{}, fmt.Errorf("parse config: more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("parse config: %s", yamlError(err))
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// yamlError rewrites yaml.v3's messages ("field foo not found in type
// config.Config") so that they name the key as written in the file.
func yamlError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, 0, len(te.Errors))
		for _, m := range te.Errors {
			msgs = append(msgs, rewriteYAMLMsg(m))
		}
		return strings.Join(msgs, "; ")
	}
	return err.Error()
}

func rewriteYAMLMsg(m string) string {
	// "line 3: field foo not found in type config.Config"
	if i := strings.Index(m, "field "); i >= 0 {
		if j := strings.Index(m, " not found in type"); j > i {
			return m[:i] + "unknown key " + strconv.Quote(m[i+len("field "):j])
		}
	}
	return m
}

// Validate checks every key; errors name the key.
// BootstrapToken is one entry of bootstrap_tokens.
type BootstrapToken struct {
	File string   `yaml:"file"`
	Tags []string `yaml:"tags"`
}

func (c *Config) Validate() error {
	files := map[string]bool{c.BootstrapTokenFile: c.BootstrapTokenFile != ""}
	for i, bt := range c.BootstrapTokens {
		if bt.File == "" {
			return fmt.Errorf("bootstrap_tokens[%d].file: required", i)
		}
		if files[bt.File] {
			return fmt.Errorf("bootstrap_tokens[%d].file: %q is used twice", i, bt.File)
		}
		files[bt.File] = true
		if len(bt.Tags) > api.MaxTags {
			return fmt.Errorf("bootstrap_tokens[%d].tags: at most %d", i, api.MaxTags)
		}
		for j, tag := range bt.Tags {
			if err := api.ValidateTag(tag); err != nil {
				return fmt.Errorf("bootstrap_tokens[%d].tags[%d]: %w", i, j, err)
			}
		}
	}
	if c.ScrapeTokenFile != "" && (files[c.ScrapeTokenFile] || filepath.Base(c.ScrapeTokenFile) == "registry.crt") {
		return fmt.Errorf("scrape_token_file: %q is used by a bootstrap token or is registry.crt", c.ScrapeTokenFile)
	}
	if err := validateHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if err := c.validateStore(); err != nil {
		return err
	}
	if c.STUNListen != "off" {
		if err := validateHostPort(c.STUNListen); err != nil {
			return fmt.Errorf("stun_listen: %w", err)
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("public_url: %q: want https://host[:port]", c.PublicURL)
		}
	}
	if _, err := meshnet.ParseCIDR(c.MeshCIDR); err != nil {
		return fmt.Errorf("mesh_cidr: %w", err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("tls_cert, tls_key: set both or neither")
	}
	if d := time.Duration(c.RequestBodyTimeout); d < time.Second || d > 5*time.Minute {
		return fmt.Errorf("request_body_timeout: must be between 1s and 5m0s")
	}
	if c.MaxConnsPerSource < 0 {
		return fmt.Errorf("max_conns_per_source: must not be negative")
	}
	if time.Duration(c.TokenDefaultExpiry) > api.MaxTokenExpiry {
		return fmt.Errorf("token_default_expiry: %s is longer than the maximum %s (10 years)", time.Duration(c.TokenDefaultExpiry), api.MaxTokenExpiry)
	}
	if c.TokenDefaultExpiry < 0 {
		return fmt.Errorf("token_default_expiry: must be positive")
	}
	if c.ReplicaExpiry < Duration(2*time.Second) {
		return fmt.Errorf("replica_expiry: must be at least 2s")
	}
	if c.OnlineTimeout < Duration(5*time.Second) {
		return fmt.Errorf("online_timeout: must be at least 5s")
	}
	if c.PSKRotationOverlap < Duration(MinPSKRotationOverlap) || c.PSKRotationOverlap > Duration(MaxPSKRotationOverlap) {
		return fmt.Errorf("psk_rotation_overlap: %v: must be from %v to %v", time.Duration(c.PSKRotationOverlap), MinPSKRotationOverlap, MaxPSKRotationOverlap)
	}
	zone := strings.TrimSuffix(strings.ToLower(c.DNSZone), ".")
	for _, label := range strings.Split(zone, ".") {
		if err := api.ValidateName(label); err != nil {
			return fmt.Errorf("dns_zone: %q: %w", c.DNSZone, err)
		}
	}
	c.DNSZone = zone
	if c.JoinFailuresPerMinute < 0 {
		return fmt.Errorf("join_failures_per_minute: must not be negative")
	}
	if c.JoinFailureBurst < 0 {
		return fmt.Errorf("join_failure_burst: must not be negative")
	}
	if err := c.Relay.validate(); err != nil {
		return err
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log_format: %q: want text or json", c.LogFormat)
	}
	return nil
}

// Prefix returns the parsed mesh prefix (Validate has checked it).
func (c *Config) Prefix() netip.Prefix {
	p, err := meshnet.ParseCIDR(c.MeshCIDR)
	if err != nil {
		return meshnet.DefaultCIDR
	}
	return p
}

func validateHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port or :port", s)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
			return fmt.Errorf("%q: bad host %q", s, host)
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%q: bad port %q", s, port)
	}
	_ = n
	return nil
}

func validHostname(h string) bool {
	for _, l := range strings.Split(strings.TrimSuffix(strings.ToLower(h), "."), ".") {
		if api.ValidateName(l) != nil {
			return false
		}
	}
	return true
}

// LocalURL returns the URL an admin CLI on this machine uses to reach the
// server listening on listen: ":8443" and "0.0.0.0:8443" become
// https://127.0.0.1:8443, "[::]:8443" becomes https://[::1]:8443.
func LocalURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen %q: %w", listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

func (r *RelayConfig) validate() error {
	if err := relayID(r.ID); err != nil {
		return fmt.Errorf("relay.id: %w", err)
	}
	if r.PublicURL != "" {
		if err := relayURL(r.PublicURL); err != nil {
			return fmt.Errorf("relay.public_url: %w", err)
		}
	}
	seen := map[string]int{r.ID: -1}
	for i, x := range r.Extra {
		if err := relayID(x.ID); err != nil {
			return fmt.Errorf("relay.extra[%d].id: %w", i, err)
		}
		if j, dup := seen[x.ID]; dup {
			if j < 0 {
				return fmt.Errorf("relay.extra[%d].id: %q is the coordinator relay's id", i, x.ID)
			}
			return fmt.Errorf("relay.extra[%d].id: %q duplicate of relay.extra[%d]", i, x.ID, j)
		}
		seen[x.ID] = i
		if err := relayURL(x.URL); err != nil {
			return fmt.Errorf("relay.extra[%d].url: %w", i, err)
		}
	}
	return nil
}

func relayID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%q: want 1 to 64 characters", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%q: only letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}

func relayURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "wss" && u.Scheme != "ws") || u.Host == "" {
		return fmt.Errorf("%q: want wss://host[:port]/path", s)
	}
	return nil
}

// validateStore checks store, postgres_dsn and postgres_password_file.
// Errors never show the DSN (it may hold a password).
func (c *Config) validateStore() error {
	switch c.Store {
	case StoreSQLite:
		if c.PostgresDSN != "" {
			return fmt.Errorf("postgres_dsn: set, but store is %q (want store: postgres)", c.Store)
		}
		if c.PostgresPasswordFile != "" {
			return fmt.Errorf("postgres_password_file: set, but store is %q (want store: postgres)", c.Store)
		}
		return nil
	case StorePostgres:
	default:
		return fmt.Errorf("store: %q: want sqlite or postgres", c.Store)
	}
	if c.PostgresDSN == "" {
		return fmt.Errorf("postgres_dsn: required with store: postgres")
	}
	if _, err := pgconn.ParseConfig(c.PostgresDSN); err != nil {
		// pgconn's parse errors redact the password.
		return fmt.Errorf("postgres_dsn: %w", err)
	}
	if c.PostgresPasswordFile != "" && dsnHasPassword(c.PostgresDSN) {
		return fmt.Errorf("postgres_password_file: set, but postgres_dsn holds a password too (keep it in one place)")
	}
	if !c.Relay.Disabled {
		// Nodes of other replicas reach this replica's relay by its ID
		// and URL.
		if c.Relay.ID == DefaultRelayID {
			return fmt.Errorf("relay.id: with store: postgres give each replica's relay its own id (not %q), or set relay.disabled", DefaultRelayID)
		}
		if c.Relay.PublicURL == "" && c.PublicURL == "" {
			if host, _, err := net.SplitHostPort(c.Listen); err == nil {
				if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
					return fmt.Errorf("public_url: required with store: postgres and a wildcard listen address (nodes of other replicas reach this replica's relay there), or set relay.public_url")
				}
			}
		}
	}
	return nil
}

// PostgresPassword reads postgres_password_file (its first line); "" when
// the key is not set.
func (c *Config) PostgresPassword() (string, error) {
	if c.PostgresPasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.PostgresPasswordFile)
	if err != nil {
		return "", fmt.Errorf("postgres_password_file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimRight(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("postgres_password_file: %s: empty", c.PostgresPasswordFile)
	}
	return pw, nil
}

// dsnHasPassword reports whether a DSN (URL or key=value form) carries a
// password itself.
func dsnHasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return false
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Has("password")
	}
	for _, f := range strings.Fields(dsn) {
		if k, _, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == "password" {
			return true
		}
	}
	return false
}
