// Package replaylog is the registry's persisted replay cache: the
// signatures of accepted node requests and joins (nodeauth.Replays), kept
// in memory and appended to a file in the data directory, so that a
// request captured before a restart cannot be replayed after it.
//
// # File format
//
// A sequence of 40-byte records: the acceptance time (unix nanoseconds,
// big-endian int64) and the SHA-256 of the signature. Open loads the
// records younger than Window and rewrites the file with only those;
// while running, the file is rewritten the same way every Window/2.
//
// Each accepted signature is appended with one write(2) before the request
// is answered, without fsync: it survives a crash or restart of the
// process, not one of the machine (a request captured in the last moments
// before a power loss could be replayed once). A failed write is logged
// and the signature is still kept in memory.
package replaylog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
)

// FileName is the file's name in the data directory.
const FileName = "replay.log"

// Window is how long a signature is remembered: a signed request is
// accepted only within nodeauth.MaxSkew of its date, either way.
const Window = 2 * nodeauth.MaxSkew

const recordSize = 8 + sha256.Size

// maxFile bounds the file that Open reads.
const maxFile = 256 << 20

// Log is a persisted replay cache. Safe for concurrent use.
type Log struct {
	path string
	log  *slog.Logger

	mu        sync.Mutex // guards the fields below
	f         *os.File
	seen      map[[sha256.Size]byte]time.Time
	compacted time.Time
	errLogged time.Time
}

var _ nodeauth.Replays = (*Log)(nil)

// Open loads the cache at path (creating it with mode 0600), keeping what
// is younger than Window at now.
func Open(path string, now time.Time, log *slog.Logger) (*Log, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Log{path: path, log: log, seen: make(map[[sha256.Size]byte]time.Time)}
	b, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("open replay log: %w", err)
	}
	for len(b) >= recordSize {
		t := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
		var k [sha256.Size]byte
		copy(k[:], b[8:recordSize])
		b = b[recordSize:]
		if live(t, now) {
			l.seen[k] = t
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.rewriteLocked(now); err != nil {
		return nil, fmt.Errorf("open replay log: %w", err)
	}
	return l, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxFile))
}

// live reports whether a signature accepted at t still matters at now. A t
// in the future (the clock was set back) is kept.
func live(t, now time.Time) bool { return now.Sub(t) <= Window }

// rewriteLocked replaces the file with the live records.
func (l *Log) rewriteLocked(now time.Time) error {
	var buf bytes.Buffer
	for k, t := range l.seen {
		if !live(t, now) {
			delete(l.seen, k)
			continue
		}
		buf.Write(record(k, t))
	}
	tmp := l.path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, l.path); err != nil {
		os.Remove(tmp)
		return err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f = f
	l.compacted = now
	return nil
}

func record(k [sha256.Size]byte, t time.Time) []byte {
	var r [recordSize]byte
	binary.BigEndian.PutUint64(r[:8], uint64(t.UnixNano()))
	copy(r[8:], k[:])
	return r[:]
}

// Add implements nodeauth.Replays: it records sig and reports whether it
// was new.
func (l *Log) Add(sig []byte, now time.Time) bool {
	k := sha256.Sum256(sig)
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.compacted) > Window/2 {
		if err := l.rewriteLocked(now); err != nil {
			l.writeFailedLocked(now, err)
		}
	}
	if _, dup := l.seen[k]; dup {
		return false
	}
	l.seen[k] = now
	if l.f != nil {
		if _, err := l.f.Write(record(k, now)); err != nil {
			l.writeFailedLocked(now, err)
		}
	}
	return true
}

func (l *Log) writeFailedLocked(now time.Time, err error) {
	if now.Sub(l.errLogged) < time.Minute {
		return
	}
	l.errLogged = now
	l.log.Error("replay log: write failed; signatures are kept in memory only", "path", l.path, "err", err)
}

// Len returns the number of remembered signatures.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
