// Package coordinator runs the registry: the HTTPS API (with /metrics and
// /healthz) and the STUN responder, on the state in the data directory.
// Both tunnelmesh-registry and `tunnelmesh coordinator` start it through
// Run (or New and Coordinator.Run); Options let the agent mount the
// WebSocket relay on the same HTTPS server and list relays in every netmap.
package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/admincred"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/config"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/connlimit"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/metrics"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/policystore"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/replaylog"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/server"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/postgres"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store/sqlite"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/stun"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/tlscert"
	relayserver "github.com/tunnelmesh/tunnelmesh/relay/server"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/logging"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Config is the registry's configuration (the YAML file).
type Config = config.Config

// BootstrapToken is one entry of the bootstrap_tokens config key.
type BootstrapToken = config.BootstrapToken

// ExtraRelay is a standalone relay listed in every netmap (relay.extra).
type ExtraRelay = config.ExtraRelay

// Policy shapes each node's netmap: which peers it sees, and its compiled
// inbound filter. Nil means everyone sees everyone, no filter.
type Policy = server.Policy

// PolicyDir is the directory under DataDir that keeps the policy versions.
const PolicyDir = "policy"

// LoadConfig reads and validates a configuration file; errors name the key.
func LoadConfig(path string) (Config, error) { return config.Load(path) }

// ParseConfig parses and validates a configuration document.
func ParseConfig(b []byte) (Config, error) { return config.Parse(b) }

// DefaultConfig is the configuration of an empty file.
func DefaultConfig() Config { return config.Default() }

// Options add to what the configuration says.
type Options struct {
	// Logger receives the coordinator's logs (component=registry); none
	// when nil.
	Logger *slog.Logger
	// Registry collects the metrics served at /metrics. When nil the
	// coordinator makes its own, with Go and process collectors. Pass one
	// to add metrics of handlers mounted through Handlers.
	Registry *prometheus.Registry
	// Handlers are mounted on the HTTPS server by http.ServeMux pattern,
	// e.g. {api.PathRelay: relayHandler}. They get no authentication from
	// the coordinator.
	Handlers map[string]http.Handler
	// Relays are listed in every node's netmap.
	Relays []api.Relay
	// DNSServers are listed in every node's netmap (mesh addresses of
	// meshdns servers).
	DNSServers []netip.Addr
	// Policy shapes each node's netmap. When nil the coordinator keeps the
	// policy itself, versioned in DataDir/policy, managed through the admin
	// API (tunnelmesh policy apply).
	Policy Policy
	// InitialPolicy (a policy file, e.g. policy.DefaultYAML) is stored as
	// the first policy version when DataDir holds none; it overrides the
	// config's policy_file. Without either, and until a policy is applied,
	// the built-in default policy (policy.DefaultYAML) is in force.
	InitialPolicy []byte
	// SoftwareVersion is reported by /api/v1/info.
	SoftwareVersion string
}

// Coordinator is a running registry.
type Coordinator struct {
	cfg      Config
	log      *slog.Logger
	st       store.Store
	srv      *server.Server
	httpSrv  *http.Server
	ln       net.Listener
	stun     *stun.Server
	relay    *relayserver.Server // nil when relay.disabled
	replays  nodeauth.Replays
	replayLg *replaylog.Log // the file of replays, when not shared
	pin      string
	adminCrd string
	meshID   string
	// ownURL and ownRelay are what this replica lists of itself in a
	// shared store (refreshReplica); empty and nil when it lists nothing.
	ownURL   string
	ownRelay *api.Relay

	closeOnce sync.Once
}

// Run starts the coordinator and blocks until ctx ends.
func Run(ctx context.Context, cfg Config, opts Options) error {
	c, err := New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// New opens the state in cfg.DataDir (creating the mesh, admin credential
// and self-signed certificate on first start) and binds the listeners, so
// that Addr and STUNAddr are known before Run. Call Run, or Close to give
// everything back without serving.
func New(ctx context.Context, cfg Config, opts Options) (c *Coordinator, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = logging.Component(log, "registry")
	c = &Coordinator{cfg: cfg, log: log}
	// The error returns below set c to nil; close what was opened.
	opened := c
	defer func() {
		if err != nil {
			opened.Close()
		}
	}()

	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	met, err := metrics.New(reg)
	if err != nil {
		return nil, fmt.Errorf("coordinator: metrics: %w", err)
	}

	var hosts []string
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err == nil {
			hosts = append(hosts, u.Hostname())
		}
	}
	// Everything the registry keeps is private to it: the directory is
	// 0700 and every file in it 0600.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("coordinator: data_dir: %w", err)
	}
	if c.st, err = openStore(ctx, cfg, log); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	var cert tls.Certificate
	var pin string
	if sec, ok := c.st.(store.Secrets); ok {
		// Replicas of a shared store serve one certificate (the pin in
		// every join token) and accept one admin credential, kept in the
		// store; configured tls_cert/tls_key files must then be the same
		// on every replica.
		if cfg.TLSCert == "" {
			cert, pin, err = tlscert.LoadShared(cfg.DataDir, hosts, func(create func() ([]byte, error)) ([]byte, error) {
				return sec.Secret(ctx, secretTLS, create)
			})
		} else {
			cert, pin, err = tlscert.Load(cfg.DataDir, cfg.TLSCert, cfg.TLSKey, hosts)
		}
		if err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
		if c.adminCrd, err = admincred.LoadShared(cfg.DataDir, func(create func() ([]byte, error)) ([]byte, error) {
			return sec.Secret(ctx, secretAdmin, create)
		}); err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
	} else {
		if cert, pin, err = tlscert.Load(cfg.DataDir, cfg.TLSCert, cfg.TLSKey, hosts); err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
		if c.adminCrd, err = admincred.LoadOrCreate(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
	}
	c.pin = pin
	// Signed requests and joins accepted before a restart stay refused
	// after it (replaylog).
	// Replicas of a shared store share it in the store.
	if sr, ok := c.st.(store.Replays); ok {
		c.replays = replaylog.NewShared(sr, log)
	} else {
		if c.replayLg, err = replaylog.Open(filepath.Join(cfg.DataDir, replaylog.FileName), time.Now(), log); err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
		c.replays = c.replayLg
	}
	mesh, err := c.st.InitMesh(ctx, cfg.Prefix(), time.Now())
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	c.meshID = mesh.ID
	if cfg.BootstrapTokenFile != "" {
		if err := writeBootstrapToken(ctx, c.st, pin, cfg.BootstrapTokenFile, nil, log); err != nil {
			return nil, fmt.Errorf("coordinator: bootstrap_token_file: %w", err)
		}
	}
	for i, bt := range cfg.BootstrapTokens {
		if err := writeBootstrapToken(ctx, c.st, pin, bt.File, bt.Tags, log); err != nil {
			return nil, fmt.Errorf("coordinator: bootstrap_tokens[%d]: %w", i, err)
		}
	}
	pol := opts.Policy
	if pol == nil {
		initial := opts.InitialPolicy
		if initial == nil && cfg.PolicyFile != "" {
			if initial, err = os.ReadFile(cfg.PolicyFile); err != nil {
				return nil, fmt.Errorf("coordinator: policy_file: %w", err)
			}
		}
		var ps *policystore.Store
		if sp, ok := c.st.(store.Policies); ok {
			// Replicas share the policy versions through the store.
			ps, err = policystore.OpenBackend(policystore.StoreBackend(sp), initial, 0, log)
		} else {
			ps, err = policystore.Open(filepath.Join(cfg.DataDir, PolicyDir), initial, 0, log)
		}
		if err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
		pol = ps
	}
	relays := slices.Clone(opts.Relays)
	var homeRelay string
	var srvRef *server.Server
	_, ownRelay := opts.Handlers[api.PathRelay] // the caller mounts its own
	if !cfg.Relay.Disabled && !ownRelay {
		c.relay, err = relayserver.New(relayserver.Config{
			ID: cfg.Relay.ID,
			// A node may use the relay while it is in the node table.
			Authorize:  func(k nodekey.PublicKey) bool { return srvRef != nil && srvRef.HasNodeKey(k) },
			Registerer: reg,
			QueueLen:   relayQueueLen,
			Logger:     log.With("component", "registry-relay"),
		})
		if err != nil {
			return nil, fmt.Errorf("coordinator: relay: %w", err)
		}
		homeRelay = cfg.Relay.ID
		relays = append([]api.Relay{{ID: cfg.Relay.ID, URL: coordinatorRelayURL(cfg), TLSPin: pin}}, relays...)
	}
	relays = append(relays, cfg.Relay.Relays()...)
	if homeRelay == "" && len(relays) > 0 {
		homeRelay = relays[0].ID
	}
	var onRefresh func()
	if c.relay != nil {
		rs := c.relay
		onRefresh = func() { rs.Recheck() }
	}
	c.srv, err = server.New(ctx, c.st, server.Settings{
		Mesh:                  mesh,
		DNSZone:               cfg.DNSZone,
		DNSServers:            opts.DNSServers,
		Relays:                relays,
		HomeRelay:             homeRelay,
		OnRefresh:             onRefresh,
		TokenDefaultExpiry:    time.Duration(cfg.TokenDefaultExpiry),
		OnlineTimeout:         time.Duration(cfg.OnlineTimeout),
		PSKOverlap:            time.Duration(cfg.PSKRotationOverlap),
		JoinFailuresPerMinute: cfg.JoinFailuresPerMinute,
		JoinFailureBurst:      cfg.JoinFailureBurst,
		BodyTimeout:           time.Duration(cfg.RequestBodyTimeout),
		Replays:               c.replays,
		Pin:                   pin,
		AdminCredential:       c.adminCrd,
		Policy:                pol,
		SoftwareVersion:       opts.SoftwareVersion,
		Logger:                log,
		Metrics:               met,
	})
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	srvRef = c.srv
	if err := enableServiceDiscovery(c.srv, c.st, cfg, cert.Certificate[0], reg, log); err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	c.srv.Handle(api.PathMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if c.relay != nil {
		c.srv.Handle(api.PathRelay, c.relay)
	}
	for pattern, h := range opts.Handlers {
		c.srv.Handle(pattern, h)
	}

	if c.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("coordinator: listen: %w", err)
	}
	if c.relay != nil {
		c.ln = relayserver.TuneListener(c.ln, 0) // socket buffers, TCP_NODELAY
		if rs, ok := c.st.(store.Relays); ok {
			// Nodes of the other replicas reach this replica's relay
			// there; every replica lists it (store.Relays).
			u := coordinatorRelayURL(cfg)
			if u == "" {
				u = "wss://" + c.ln.Addr().String() + api.PathRelay
			}
			c.ownRelay = &api.Relay{ID: cfg.Relay.ID, URL: u, TLSPin: pin}
			if _, err := rs.RegisterRelay(ctx, *c.ownRelay, time.Now()); err != nil {
				return nil, fmt.Errorf("coordinator: %w", err)
			}
		}
	}
	if rs, ok := c.st.(store.Registries); ok {
		// Every netmap lists every replica's URL: nodes fail over to
		// this one by themselves.
		if u := registryURL(cfg, c.ln.Addr()); u != "" {
			c.ownURL = u
			if _, err := rs.RegisterRegistry(ctx, u, time.Now()); err != nil {
				return nil, fmt.Errorf("coordinator: %w", err)
			}
		} else {
			log.Warn("nodes cannot fail over to this replica: set public_url (the listen address is a wildcard)", "listen", c.ln.Addr().String())
		}
	}
	c.ln = connlimit.New(c.ln, cfg.MaxConnsPerSource, func(src netip.Addr) {
		log.Debug("connection refused: too many from one source", "source", src, "max_conns_per_source", cfg.MaxConnsPerSource)
	})
	if cfg.STUNListen != "off" {
		if c.stun, err = stun.Listen(cfg.STUNListen, log.With("component", "registry-stun"), stunCounter{met.STUNRequests}); err != nil {
			return nil, fmt.Errorf("coordinator: stun listen: %w", err)
		}
	}
	c.httpSrv = &http.Server{
		Handler: c.srv.Handler(),
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
			// Netmaps are bulk transfers: full-size records from the start.
			DynamicRecordSizingDisabled: true,
		},
		// Every phase of a connection is bounded: the TLS handshake and
		// each request header by ReadHeaderTimeout, the wait for the next
		// request by IdleTimeout, bodies (request_body_timeout) and
		// answers (server.WriteTimeout) by the server's handler. No
		// ReadTimeout: it would end netmap watches (up to a minute)
		// halfway.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		// HTTP/1.1 only: a node holds one connection for its netmap
		// watch anyway, HTTP/2 would hand large netmaps to the connection
		// in 4 KiB pieces (measured: fan-out to 1,000 watchers about twice
		// as slow), and the WebSocket relay needs HTTP/1.1 upgrades.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return c, nil
}

type stunCounter struct{ v *prometheus.CounterVec }

func (s stunCounter) Inc(result string) { s.v.WithLabelValues(result).Inc() }

// Run serves until ctx ends, then shuts down (waiting for the handlers;
// pending netmap watches are answered at once) and closes the store.
func (c *Coordinator) Run(ctx context.Context) error {
	defer c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reqCtx, cancelReqs := context.WithCancel(context.Background())
	defer cancelReqs()
	c.httpSrv.BaseContext = func(net.Listener) context.Context { return reqCtx }

	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := c.httpSrv.ServeTLS(c.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("https server: %w", err)
		}
	}()
	if c.stun != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.stun.Run(ctx); err != nil {
				errc <- fmt.Errorf("stun: %w", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.srv.Run(ctx)
	}()
	if rs, ok := c.st.(store.Registries); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.refreshReplica(ctx, rs, time.Duration(c.cfg.ReplicaExpiry))
		}()
	}
	c.log.Info("registry started", "listen", c.ln.Addr().String(), "stun", c.stunAddrString(), "mesh_id", c.meshID,
		"mesh_cidr", c.cfg.MeshCIDR, "data_dir", c.cfg.DataDir, "store", c.cfg.Store, "tls_pin", c.pin)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	cancelReqs()
	shutCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if serr := c.httpSrv.Shutdown(shutCtx); serr != nil && err == nil {
		err = fmt.Errorf("https shutdown: %w", serr)
	}
	if c.relay != nil {
		c.relay.Close() // hijacked WebSocket connections outlive Shutdown
	}
	wg.Wait()
	c.log.Info("registry stopped")
	return err
}

// refreshReplica keeps this replica's URL and relay listed: it registers
// them again every quarter of expiry, and removes those of replicas that
// have not done so for expiry (gone for good: nodes stop trying them),
// until ctx ends.
func (c *Coordinator) refreshReplica(ctx context.Context, rs store.Registries, expiry time.Duration) {
	t := time.NewTicker(expiry / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if c.ownURL != "" {
			if _, err := rs.RegisterRegistry(ctx, c.ownURL, now); err != nil && ctx.Err() == nil {
				c.log.Warn("replica refresh failed", "err", err)
			}
		}
		if rel, ok := c.st.(store.Relays); ok && c.ownRelay != nil {
			if _, err := rel.RegisterRelay(ctx, *c.ownRelay, now); err != nil && ctx.Err() == nil {
				c.log.Warn("replica relay refresh failed", "err", err)
			}
		}
		if v, err := rs.ExpireReplicas(ctx, now.Add(-expiry)); err != nil {
			if ctx.Err() == nil {
				c.log.Warn("replica expiry failed", "err", err)
			}
		} else if v != 0 {
			c.log.Info("replicas not seen for replica_expiry are no longer listed", "replica_expiry", expiry, "version", v)
		}
	}
}

// Close releases the listeners and the store. Run calls it on return.
func (c *Coordinator) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.ln != nil {
			c.ln.Close()
		}
		if c.stun != nil {
			c.stun.Close()
		}
		if c.relay != nil {
			c.relay.Close()
		}
		if c.st != nil {
			err = c.st.Close()
		}
		if c.replayLg != nil {
			c.replayLg.Close()
		}
	})
	return err
}

func (c *Coordinator) stunAddrString() string {
	if c.stun == nil {
		return "off"
	}
	return c.stun.Addr().String()
}

// Addr is the HTTPS listener's address.
func (c *Coordinator) Addr() net.Addr { return c.ln.Addr() }

// URL is the base URL of the API on this machine (https://127.0.0.1:port
// for a wildcard listener).
func (c *Coordinator) URL() string {
	u, err := config.LocalURL(c.ln.Addr().String())
	if err != nil {
		return "https://" + c.ln.Addr().String()
	}
	return u
}

// STUNAddr is the STUN responder's address (invalid when disabled).
func (c *Coordinator) STUNAddr() netip.AddrPort {
	if c.stun == nil {
		return netip.AddrPort{}
	}
	return c.stun.Addr()
}

// Pin is the TLS pin of the served certificate (it is in every token).
func (c *Coordinator) Pin() string { return c.pin }

// AdminCredential is the admin credential (a secret: never log it).
func (c *Coordinator) AdminCredential() string { return c.adminCrd }

// MeshID is the mesh's ID.
func (c *Coordinator) MeshID() string { return c.meshID }

// NetmapChanged bumps the mesh version so every node gets a fresh netmap,
// e.g. after the policy or the relay list changed.
func (c *Coordinator) NetmapChanged(ctx context.Context) error { return c.srv.Changed(ctx) }

// NetmapVersion is the current mesh version.
func (c *Coordinator) NetmapVersion() uint64 { return c.srv.Version() }

// writeBootstrapToken creates a reusable, non-expiring join token with the
// given tags and writes it to path (mode 0600, atomically), unless path
// exists already.
func writeBootstrapToken(ctx context.Context, st store.Store, pin, path string, tags []string, log *slog.Logger) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	tok, err := jointoken.New(pin)
	if err != nil {
		return err
	}
	hash := tok.SecretHash()
	if err := st.CreateToken(ctx, store.Token{ID: tok.ID, SecretHash: hash[:], Reusable: true, Tags: tags, CreatedAt: time.Now()}); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bootstrap-token-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(tok.String() + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	log.Info("bootstrap join token written", "token_id", tok.ID, "file", path, "tags", tags)
	return nil
}

// Names of the secrets a shared store keeps for every replica.
const (
	secretTLS   = "tls_self_signed" // certificate and key, PEM
	secretAdmin = "admin_credential"
)

// openStore opens the configured store: SQLite in data_dir, or the
// PostgreSQL database of postgres_dsn (never logged: it may hold a
// password).
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (store.Store, error) {
	if cfg.Store != config.StorePostgres {
		st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, sqlite.FileName))
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	pw, err := cfg.PostgresPassword()
	if err != nil {
		return nil, err
	}
	st, err := postgres.Open(ctx, cfg.PostgresDSN, postgres.Options{Password: pw})
	if err != nil {
		return nil, err
	}
	log.Info("store: postgres", "database", st.Where())
	return st, nil
}

// coordinatorRelayURL is relay.public_url, or public_url with wss and
// api.PathRelay, or "" (each node then derives it from the coordinator URL
// it uses).
func coordinatorRelayURL(cfg Config) string {
	if cfg.Relay.PublicURL != "" {
		return cfg.Relay.PublicURL
	}
	if cfg.PublicURL == "" {
		return ""
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil {
		return ""
	}
	u.Scheme, u.Path = "wss", api.PathRelay
	return u.String()
}

// registryURL is the URL nodes reach this replica's API at: public_url,
// else the listen address when it is not a wildcard, else "".
func registryURL(cfg Config, ln net.Addr) string {
	if cfg.PublicURL != "" {
		if u, err := url.Parse(cfg.PublicURL); err == nil && u.Host != "" {
			return "https://" + u.Host
		}
		return ""
	}
	ap, err := netip.ParseAddrPort(ln.String())
	if err != nil || ap.Addr().IsUnspecified() {
		return ""
	}
	return "https://" + ap.String()
}

// relayQueueLen is the coordinator relay's per-node send queue: a bulk
// flow's burst (a TCP window inside the tunnel) must fit, or it sees
// losses.
const relayQueueLen = 2048
