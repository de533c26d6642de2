// Package scrapecred holds the registry's scrape credentials: bearer tokens
// that Prometheus presents to the service discovery endpoint
// (GET PathSD). The admin creates them (tunnelmesh admin scrape-tokens
// create); each is shown once, and only its SHA-256 is kept, in one file
// of the data directory (mode 0600), rewritten atomically on each change.
//
// A token reads "tms1.<id>.<secret>": the ID finds the entry, the secret's
// hash is compared in constant time. The secret is 32 random bytes, so a
// plain hash is enough.
//
// Replicas that share a store (store: postgres) keep the credentials in it
// instead (OpenShared): a token made on one replica works on all. Each
// replica caches them and reloads at most every ReloadInterval, and on an
// unknown ID at most once a second, so a revocation on one replica takes
// effect on the others within ReloadInterval.
package scrapecred

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/store"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Paths of the API that uses these credentials.
const (
	// PathSD serves Prometheus HTTP service discovery (http_sd_configs).
	PathSD = "/api/v1/sd/prometheus"
	// PathAdmin: GET lists, POST creates; DELETE PathAdmin/{id} revokes.
	PathAdmin = "/api/v1/admin/scrape-tokens"
)

// FileName is the credentials' file in the data directory.
const FileName = "scrape-tokens.json"

const prefix = "tms1."

// MaxTokens bounds the number of stored credentials.
const MaxTokens = 100

// ErrNotFound is returned by Revoke for an unknown ID.
var ErrNotFound = errors.New("no such scrape token")

// Info describes a credential (never its secret).
type Info struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: never
}

// CreateRequest is the body of POST PathAdmin.
type CreateRequest struct {
	Name string `json:"name,omitempty"`
	// Expiry is the token's lifetime ("720h"); zero for no expiry.
	Expiry api.Duration `json:"expiry,omitempty"`
}

// CreateResponse answers POST PathAdmin: the token, shown only this once.
type CreateResponse struct {
	Token string `json:"token"`
	Info  Info   `json:"info"`
}

type stored struct {
	Info
	Hash string `json:"sha256"` // hex SHA-256 of the secret part
}

// Store is the set of credentials. Its methods are safe for concurrent use.
type Store struct {
	path   string             // the file, when not shared
	shared store.ScrapeTokens // the shared store, else nil

	mu     sync.Mutex // guards the fields below and the file
	tokens map[string]stored
	loaded time.Time // last load from shared
	missed time.Time // last load for an unknown ID
}

// Reload intervals of a shared Store.
const (
	ReloadInterval = 10 * time.Second
	minReload      = time.Second
)

// sharedTimeout bounds one call to the shared store.
const sharedTimeout = 10 * time.Second

// OpenShared returns the credentials kept in a store that registry
// replicas share.
func OpenShared(st store.ScrapeTokens) (*Store, error) {
	s := &Store{shared: st, tokens: make(map[string]stored)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.loadLocked(time.Now()); err != nil {
		return nil, fmt.Errorf("open scrape tokens: %w", err)
	}
	return s, nil
}

// loadLocked replaces the cache with the shared store's tokens.
func (s *Store) loadLocked(now time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	list, err := s.shared.ScrapeTokens(ctx)
	if err != nil {
		return err
	}
	tokens := make(map[string]stored, len(list))
	for _, t := range list {
		tokens[t.ID] = stored{Info: Info{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}, Hash: t.Hash}
	}
	s.tokens, s.loaded = tokens, now
	return nil
}

// refreshLocked reloads a shared cache older than maxAge; a failure keeps
// the cache.
func (s *Store) refreshLocked(now time.Time, maxAge time.Duration) {
	if s.shared != nil && now.Sub(s.loaded) >= maxAge {
		if err := s.loadLocked(now); err != nil {
			s.loaded = now // retry after maxAge, not on every call
		}
	}
}

// Open reads the credentials in dataDir (none when the file is missing).
func Open(dataDir string) (*Store, error) {
	s := &Store{path: filepath.Join(dataDir, FileName), tokens: make(map[string]stored)}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open scrape tokens: %w", err)
	}
	var list []stored
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("open scrape tokens %s: %w", s.path, err)
	}
	for i, t := range list {
		if t.ID == "" || len(t.Hash) != 2*sha256.Size {
			return nil, fmt.Errorf("open scrape tokens %s: [%d]: missing id or sha256", s.path, i)
		}
		s.tokens[t.ID] = t
	}
	return s, nil
}

// Create makes a credential named name, valid for expiry (0: no expiry),
// stores its hash and returns the token.
func (s *Store) Create(name string, expiry time.Duration, now time.Time) (string, Info, error) {
	if len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", Info{}, fmt.Errorf("create scrape token: name: at most 64 printable characters")
	}
	if expiry < 0 {
		return "", Info{}, fmt.Errorf("create scrape token: expiry must not be negative")
	}
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Info{}, fmt.Errorf("create scrape token: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Info{}, fmt.Errorf("create scrape token: %w", err)
	}
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	info := Info{ID: hex.EncodeToString(id[:]), Name: name, CreatedAt: now.UTC().Truncate(time.Second)}
	if expiry > 0 {
		info.ExpiresAt = info.CreatedAt.Add(expiry)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		defer cancel()
		st := store.ScrapeToken{ID: info.ID, Name: info.Name, CreatedAt: info.CreatedAt, ExpiresAt: info.ExpiresAt, Hash: hashHex(sec)}
		if err := s.shared.CreateScrapeToken(ctx, st, MaxTokens); err != nil {
			return "", Info{}, fmt.Errorf("create scrape token: %w", err)
		}
		s.tokens[info.ID] = stored{Info: info, Hash: st.Hash}
		return prefix + info.ID + "." + sec, info, nil
	}
	if len(s.tokens) >= MaxTokens {
		return "", Info{}, fmt.Errorf("create scrape token: %d tokens exist, at most %d allowed", len(s.tokens), MaxTokens)
	}
	s.tokens[info.ID] = stored{Info: info, Hash: hashHex(sec)}
	if err := s.saveLocked(); err != nil {
		delete(s.tokens, info.ID)
		return "", Info{}, fmt.Errorf("create scrape token: %w", err)
	}
	return prefix + info.ID + "." + sec, info, nil
}

// List returns every credential, oldest first.
func (s *Store) List() []Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked(time.Now(), minReload)
	out := make([]Info, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, t.Info)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Revoke deletes a credential.
func (s *Store) Revoke(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		defer cancel()
		err := s.shared.DeleteScrapeToken(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("revoke scrape token: %w", err)
		}
		delete(s.tokens, id)
		return nil
	}
	t, ok := s.tokens[id]
	if !ok {
		return ErrNotFound
	}
	delete(s.tokens, id)
	if err := s.saveLocked(); err != nil {
		s.tokens[id] = t
		return fmt.Errorf("revoke scrape token: %w", err)
	}
	return nil
}

// Check reports whether presented is a stored, unexpired credential.
func (s *Store) Check(presented string, now time.Time) bool {
	rest, ok := strings.CutPrefix(presented, prefix)
	if !ok {
		return false
	}
	id, sec, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	s.mu.Lock()
	s.refreshLocked(now, ReloadInterval)
	t, found := s.tokens[id]
	if !found && s.shared != nil && now.Sub(s.missed) >= minReload {
		// Made on another replica since the last load?
		s.missed = now
		if s.loadLocked(now) == nil {
			t, found = s.tokens[id]
		}
	}
	s.mu.Unlock()
	if !found {
		return false
	}
	if !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(hashHex(sec)), []byte(t.Hash)) == 1
}

func hashHex(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// saveLocked writes the file through a temporary file and a rename.
func (s *Store) saveLocked() error {
	list := make([]stored, 0, len(s.tokens))
	for _, t := range s.tokens {
		list = append(list, t)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), FileName+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.path)
}
