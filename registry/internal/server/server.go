// Package server implements the registry's HTTPS API handlers on top of a
// store.Store: join, the node calls (netmap watch, endpoints, heartbeat,
// leave) and the admin calls (tokens, nodes).
//
// The server keeps an in-memory snapshot of every node, rebuilt after each
// change (each version bump) from the store: from the one node the change
// touched when it touched one node's record only, else from every node.
// Node authentication and netmap rendering read the snapshot; watchers
// wait on a channel that is closed when the snapshot is replaced, so one
// change wakes every watcher at once. With a store several replicas share
// (store.Changes), Run also rebuilds the snapshot on every change another
// replica commits.
package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/admincred"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/metrics"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/ratelimit"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
)

// Policy shapes each node's netmap. The policy work plugs in here; with no
// Policy every node sees every other node and gets no filter.
type Policy interface {
	// Visible reports whether self may see peer in its netmap.
	Visible(self, peer *api.Node) bool
	// Filter returns self's compiled inbound filter (nil: no policy).
	Filter(self *api.Node) *api.Filter
}

// Limits on endpoint changes per node (identical reports do not count).
const (
	EndpointChangesPerMinute = 30
	EndpointChangeBurst      = 10
)

// DefaultPSKOverlap is how long the previous mesh PSK stays accepted after
// a rotation: long enough for every node to fetch the new netmap (a watch
// answers within seconds; a node whose watch is reconnecting retries well
// within a minute) and for sessions keyed before the rotation to reach
// RejectAfterTime (3 min) on their own; short, because until it passes
// the removed node's PSK still completes handshakes.
const DefaultPSKOverlap = 5 * time.Minute

// Settings configure a Server.
type Settings struct {
	Mesh       store.Mesh
	DNSZone    string
	DNSServers []netip.Addr
	Relays     []api.Relay
	// HomeRelay is the ID of the relay (in Relays) every node listens on.
	HomeRelay string
	// OnRefresh, if set, is called after each new snapshot of the nodes is
	// published (the coordinator's relay rechecks its connections). It
	// runs with the netmap lock held: it must not call back into Server
	// other than HasNodeKey.
	OnRefresh          func()
	TokenDefaultExpiry time.Duration
	OnlineTimeout      time.Duration
	// PSKOverlap is how long, after a node's removal rotated the mesh PSK,
	// the previous PSK stays accepted (DefaultPSKOverlap when zero).
	PSKOverlap            time.Duration
	JoinFailuresPerMinute int
	JoinFailureBurst      int
	// BodyTimeout bounds the time a client may take to send a request
	// body; DefaultBodyTimeout when zero.
	BodyTimeout time.Duration
	// Pin is the TLS pin of the server's certificate, put into tokens.
	Pin             string
	AdminCredential string
	Policy          Policy
	SoftwareVersion string
	Logger          *slog.Logger
	Metrics         *metrics.Metrics
	// Replays remembers the signatures of accepted node calls and joins;
	// an in-memory nodeauth.ReplayCache when nil (forgotten on restart:
	// the coordinator passes a persisted one).
	Replays nodeauth.Replays
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Server serves the registry API.
type Server struct {
	st        store.Store
	set       Settings
	log       *slog.Logger
	met       *metrics.Metrics
	adminCred admincred.Checker
	replay    nodeauth.Replays
	failLog   *failLog
	limiter   *ratelimit.AddrLimiter
	// epLimiter limits endpoint changes per node: each one is a netmap
	// change for every node, so one node must not be able to flood them.
	epLimiter *ratelimit.Limiter[string]
	hub       hub
	mux       *http.ServeMux
	// netmapBase names this process's netmap history (api.NetmapBaseHeader):
	// a client holding a netmap from another process, or from before a
	// restart, gets a whole one.
	netmapBase string

	// shared: other replicas share the store (store.Changes).
	shared bool

	catchMu  sync.Mutex // serialises catchUp; guards caughtUp
	caughtUp time.Time

	seenMu    sync.Mutex           // guards seen and persisted
	seen      map[string]time.Time // node ID -> last heard from
	persisted map[string]time.Time // node ID -> last written to a shared store
}

// New returns a server on st and loads the first snapshot.
func New(ctx context.Context, st store.Store, set Settings) (*Server, error) {
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	if set.Now == nil {
		set.Now = time.Now
	}
	if set.PSKOverlap <= 0 {
		set.PSKOverlap = DefaultPSKOverlap
	}
	if set.Metrics == nil {
		return nil, fmt.Errorf("new server: metrics are required")
	}
	if set.AdminCredential == "" {
		return nil, fmt.Errorf("new server: admin credential is required")
	}
	if set.BodyTimeout <= 0 {
		set.BodyTimeout = DefaultBodyTimeout
	}
	if set.Replays == nil {
		set.Replays = nodeauth.NewReplayCache()
	}
	s := &Server{
		st:        st,
		set:       set,
		log:       set.Logger,
		met:       set.Metrics,
		adminCred: admincred.NewChecker(set.AdminCredential),
		replay:    set.Replays,
		failLog:   newFailLog(set.Logger),
		limiter:   ratelimit.ForAddrs(set.JoinFailuresPerMinute, set.JoinFailureBurst),
		epLimiter: ratelimit.New[string](EndpointChangesPerMinute, EndpointChangeBurst),
		seen:      make(map[string]time.Time),
		persisted: make(map[string]time.Time),
	}
	_, s.shared = st.(store.Changes)
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	s.netmapBase = base64.RawURLEncoding.EncodeToString(b[:])
	s.hub.init()
	if err := s.refresh(ctx, 0); err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	s.routes()
	return s, nil
}

// Handler returns the API's handler. Extra handlers can be added to it with
// Handle before serving.
// Every request's body and answer are bounded in time (bounded).
func (s *Server) Handler() http.Handler { return s.bounded(s.mux) }

// Handle mounts an extra handler on the server's mux (e.g. the relay).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Run does the background work (marking nodes offline when they go quiet)
// until ctx ends.
//
// With a store other replicas share (store.Changes) it also follows their
// changes (follow): each one reloads the snapshot, so this replica's
// netmap watchers get it as if the change had been made here.
func (s *Server) Run(ctx context.Context) error {
	if ch, ok := s.st.(store.Changes); ok {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			ch.WatchChanges(ctx, func(c store.Change) { s.follow(ctx, c) })
		}()
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.sweepOnline(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("online sweep", "err", err)
			}
		}
	}
}

// follow loads a change another replica committed (store.Changes), unless
// this replica has loaded its version already (its own change, or a later
// reload). A change of one node, right after the loaded version, reloads
// that node only; any other one may be (or follow) another replica's
// policy apply, and reloads everything with the policy (refreshChange).
func (s *Server) follow(ctx context.Context, c store.Change) {
	if c.Version != 0 && s.Version() >= c.Version {
		return
	}
	if err := s.refreshChange(ctx, c); err != nil && ctx.Err() == nil {
		s.log.Warn("follow store changes", "version", c.Version, "err", err)
	}
}

// reloadPolicy makes the newest policy version other replicas stored
// current, with a Policy that keeps them in the shared store.
func (s *Server) reloadPolicy() {
	if r, ok := s.set.Policy.(interface{ Reload() error }); ok {
		if err := r.Reload(); err != nil {
			s.log.Warn("follow store changes", "err", err)
		}
	}
}

// Changed bumps the mesh version so every watcher gets a fresh netmap (for
// example after a policy change).
func (s *Server) Changed(ctx context.Context) error {
	v, err := s.st.BumpVersion(ctx)
	if err != nil {
		return err
	}
	return s.refresh(ctx, v)
}

// Version returns the version of the current snapshot.
func (s *Server) Version() uint64 { return s.hub.current().version }

func (s *Server) now() time.Time { return s.set.Now() }

// isOnlineLocked reports whether the node was heard from recently.
func (s *Server) isOnlineLocked(id string, now time.Time) bool {
	t, ok := s.seen[id]
	return ok && now.Sub(t) < s.set.OnlineTimeout
}

// markSeen records that the node was heard from; persist also writes it to
// the store. A node coming online bumps the version so peers learn it.
//
// With a store other replicas share, a node may watch on one replica and
// be shown by all: its last-seen time is also written when the stored one
// is older than a third of the online timeout, so every replica knows it
// is online.
func (s *Server) markSeen(ctx context.Context, id string, persist bool) error {
	now := s.now()
	s.seenMu.Lock()
	s.seen[id] = now
	if s.shared {
		if now.Sub(s.persisted[id]) >= s.set.OnlineTimeout/3 {
			persist = true
		}
		if persist {
			s.persisted[id] = now
		}
	}
	s.seenMu.Unlock()
	if persist {
		if err := s.st.Touch(ctx, id, now); err != nil {
			return err
		}
	}
	if e := s.hub.current().byID[id]; e != nil && !e.node.Online {
		return s.Changed(ctx)
	}
	return nil
}

func (s *Server) sweepOnline(ctx context.Context) (err error) {
	snap := s.hub.current()
	now := s.now()
	changed := false
	s.seenMu.Lock()
	for id, e := range snap.byID {
		if s.isOnlineLocked(id, now) != e.node.Online {
			changed = true
			break
		}
	}
	for id := range s.seen {
		if snap.byID[id] == nil {
			delete(s.seen, id)
			delete(s.persisted, id)
		}
	}
	s.seenMu.Unlock()
	if changed && s.shared {
		// A node this replica thinks went quiet may be talking to another
		// replica: learn the stored last-seen times before deciding.
		if changed, err = s.sweepShared(ctx, snap, now); err != nil {
			return err
		}
	}
	if !changed {
		return nil
	}
	return s.Changed(ctx)
}

// sweepShared updates the last-seen times from the store and reports
// whether any node's online state still differs from snap's.
func (s *Server) sweepShared(ctx context.Context, snap *snapshot, now time.Time) (bool, error) {
	_, nodes, err := s.st.Nodes(ctx)
	if err != nil {
		return false, fmt.Errorf("online sweep: %w", err)
	}
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	for _, n := range nodes {
		if t, ok := s.seen[n.ID]; (!ok || n.LastSeen.After(t)) && !n.LastSeen.IsZero() {
			s.seen[n.ID] = n.LastSeen
		}
	}
	for id, e := range snap.byID {
		if s.isOnlineLocked(id, now) != e.node.Online {
			return true, nil
		}
	}
	return false, nil
}
