package server

import (
	"io/fs"
	"sync"
	"time"
)

// Directory listings are kept for a READDIR(PLUS) sequence: go-nfs asks the
// handler for a verifier for each fresh listing and, when the client
// continues with that verifier, for the listing again. Without this,
// every continuation re-reads and re-stats the whole directory (a
// 10,000-entry directory took 94 s to list; with it, well under a second).
const (
	listingTTL  = 30 * time.Second
	maxListings = 64
)

type listing struct {
	path    string
	entries []fs.FileInfo
	at      time.Time
}

type listings struct {
	mu   sync.Mutex // guards the fields below
	next uint64
	m    map[uint64]*listing
}

// VerifierFor remembers a fresh listing and returns its verifier.
func (h *handler) VerifierFor(path string, contents []fs.FileInfo) uint64 {
	l := &h.s.listings
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[uint64]*listing{}
	}
	now := time.Now()
	for v, e := range l.m {
		if now.Sub(e.at) > listingTTL {
			delete(l.m, v)
		}
	}
	for len(l.m) >= maxListings {
		var oldest uint64
		var at time.Time
		for v, e := range l.m {
			if at.IsZero() || e.at.Before(at) {
				oldest, at = v, e.at
			}
		}
		delete(l.m, oldest)
	}
	l.next++
	v := l.next | uint64(now.UnixNano())<<20 // unique, and unlike the last run's
	l.m[v] = &listing{path: path, entries: contents, at: now}
	return v
}

// DataForVerifier returns the listing of path remembered under verifier.
func (h *handler) DataForVerifier(path string, verifier uint64) []fs.FileInfo {
	l := &h.s.listings
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[verifier]
	if !ok || e.path != path || time.Since(e.at) > listingTTL {
		return nil
	}
	return e.entries
}
