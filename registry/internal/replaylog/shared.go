package replaylog

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
)

// storeTimeout bounds one call to the store: a request waits at most this
// long for its signature to be recorded.
const storeTimeout = 5 * time.Second

// Shared is the replay cache of registry replicas sharing a store: each
// accepted signature is recorded in the store, so a request accepted by
// one replica is a replay on every other (their clocks must agree within
// nodeauth.MaxSkew, as the nodes' must). Records older than Window are
// pruned every Window/2.
//
// While the store cannot be reached the signatures are kept in a cache in
// memory (this replica still refuses replays; another replica might
// accept one once), so that nodes' calls go on; the failure is logged.
type Shared struct {
	st    store.Replays
	log   *slog.Logger
	local *nodeauth.ReplayCache

	mu        sync.Mutex // guards the fields below
	pruned    time.Time
	errLogged time.Time
}

var _ nodeauth.Replays = (*Shared)(nil)

// NewShared returns a replay cache kept in st.
func NewShared(st store.Replays, log *slog.Logger) *Shared {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shared{st: st, log: log, local: nodeauth.NewReplayCache()}
}

// Add implements nodeauth.Replays.
func (s *Shared) Add(sig []byte, now time.Time) bool {
	// A signature this replica has seen is a replay without asking.
	if !s.local.Add(sig, now) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	s.mu.Lock()
	prune := now.Sub(s.pruned) > Window/2
	if prune {
		s.pruned = now
	}
	s.mu.Unlock()
	if prune {
		if err := s.st.PruneReplays(ctx, now.Add(-Window)); err != nil {
			s.failed(now, err)
		}
	}
	fresh, err := s.st.AddReplay(ctx, sha256.Sum256(sig), now)
	if err != nil {
		s.failed(now, err)
		return true
	}
	return fresh
}

func (s *Shared) failed(now time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.errLogged) < time.Minute {
		return
	}
	s.errLogged = now
	s.log.Error("replay cache: store unreachable; signatures are kept in this replica's memory only", "err", err)
}
