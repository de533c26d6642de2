// Package handle makes NFS file handles that stay valid across nfsd
// restarts: a handle names the export and the file's device and inode, not
// a slot in a table that dies with the process.
//
// # Wire format (28 bytes)
//
//	byte 0      Version (1)
//	bytes 1-3   zero
//	bytes 4-11  export ID: the first 8 bytes of SHA-256 of the export name
//	bytes 12-19 st_dev, big endian
//	bytes 20-27 st_ino, big endian
//
// The length is a multiple of 4 because go-nfs reads a handle without
// skipping XDR padding: a handle of any other length misaligns the rest of
// the request (SETATTR then fails with NFS3ERR_NOT_SYNC).
//
// # Resolving
//
// An Index per export remembers the path of every (dev, inode) it handed
// out or saw. A handle whose inode is not remembered (after a restart, or a
// file made outside NFS) is found by walking the export once, remembering
// every file met; walks run one at a time and at most once per
// MinWalkInterval, so random handles cannot make the server walk without
// pause. A remembered path is checked with lstat before use, so a file
// removed or replaced since is not served under the old handle. Renames made
// through NFS update the remembered paths (Renamed).
//
// An inode reused by a new file after the old one was removed resolves to
// the new file (Linux's inode generation is not read); both are in the same
// export, so this never crosses an access boundary.
package handle

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tunnelmesh/tunnelmesh/nfsd/internal/rootfs"
)

// Version is the handle format version (byte 0).
const Version = 1

// Size is the length of a handle.
const Size = 28

// MinWalkInterval is the least time between two walks of one export.
const MinWalkInterval = 2 * time.Second

// MaxRemembered bounds the paths an Index keeps; past it, walks stop
// remembering files other than the one looked for.
const MaxRemembered = 1 << 20

// Errors of Resolve.
var (
	ErrMalformed = errors.New("malformed file handle")
	ErrStale     = errors.New("stale file handle")
)

// ExportID is the export part of a handle.
type ExportID [8]byte

// IDOf returns the ID of the export called name.
func IDOf(name string) ExportID {
	s := sha256.Sum256([]byte(name))
	var id ExportID
	copy(id[:], s[:8])
	return id
}

// Parse splits a handle into its export ID, device and inode.
func Parse(h []byte) (ExportID, uint64, uint64, error) {
	if len(h) != Size || h[0] != Version || h[1]|h[2]|h[3] != 0 {
		return ExportID{}, 0, 0, ErrMalformed
	}
	var id ExportID
	copy(id[:], h[4:12])
	return id, binary.BigEndian.Uint64(h[12:20]), binary.BigEndian.Uint64(h[20:28]), nil
}

// Make builds a handle.
func Make(id ExportID, dev, ino uint64) []byte {
	h := make([]byte, Size)
	h[0] = Version
	copy(h[4:12], id[:])
	binary.BigEndian.PutUint64(h[12:20], dev)
	binary.BigEndian.PutUint64(h[20:28], ino)
	return h
}

type key struct{ dev, ino uint64 }

// Index maps one export's handles to paths.
type Index struct {
	id ExportID
	fs *rootfs.FS

	walkMu   sync.Mutex // serialises walks; held across a walk
	lastWalk time.Time  // guarded by walkMu

	mu    sync.Mutex // guards paths
	paths map[key]string
}

// NewIndex returns the index of the export called name served from f, and
// makes f report its renames to it.
func NewIndex(name string, f *rootfs.FS) *Index {
	x := &Index{id: IDOf(name), fs: f, paths: map[key]string{}}
	f.OnRename(x.Renamed)
	return x
}

// ID returns the export's ID.
func (x *Index) ID() ExportID { return x.id }

func keyOf(fi fs.FileInfo) (key, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return key{}, false
	}
	return key{uint64(st.Dev), st.Ino}, true
}

// Handle returns the handle of the file at path (relative to the export,
// "." or "" the root), or nil when it cannot be stat'ed.
func (x *Index) Handle(path string) []byte {
	path = rootfs.Clean(path)
	fi, err := x.fs.Lstat(path)
	if err != nil {
		return nil
	}
	k, ok := keyOf(fi)
	if !ok {
		return nil
	}
	x.mu.Lock()
	if len(x.paths) < MaxRemembered || x.paths[k] != "" {
		x.paths[k] = path
	}
	x.mu.Unlock()
	return Make(x.id, k.dev, k.ino)
}

// Resolve returns the path of the file h names. h must be of this export.
func (x *Index) Resolve(h []byte) (string, error) {
	id, dev, ino, err := Parse(h)
	if err != nil {
		return "", err
	}
	if id != x.id {
		return "", fmt.Errorf("resolve handle: %w: another export's", ErrStale)
	}
	k := key{dev, ino}
	if p, ok := x.check(k); ok {
		return p, nil
	}
	if fi, err := x.fs.Lstat("."); err == nil {
		if rk, ok := keyOf(fi); ok && rk == k {
			x.mu.Lock()
			x.paths[k] = "."
			x.mu.Unlock()
			return ".", nil
		}
	}
	return x.walk(k)
}

// check returns the remembered path of k if it still names k.
func (x *Index) check(k key) (string, bool) {
	x.mu.Lock()
	p, ok := x.paths[k]
	x.mu.Unlock()
	if !ok {
		return "", false
	}
	fi, err := x.fs.Lstat(p)
	if err == nil {
		if got, ok := keyOf(fi); ok && got == k {
			return p, true
		}
	}
	x.mu.Lock()
	if x.paths[k] == p {
		delete(x.paths, k)
	}
	x.mu.Unlock()
	return "", false
}

// walk searches the export for k, remembering every file it meets.
func (x *Index) walk(k key) (string, error) {
	x.walkMu.Lock()
	defer x.walkMu.Unlock()
	// Another walk may have found it while this one waited.
	if p, ok := x.check(k); ok {
		return p, nil
	}
	if time.Since(x.lastWalk) < MinWalkInterval {
		return "", fmt.Errorf("resolve handle: %w", ErrStale)
	}
	x.lastWalk = time.Now()
	found := ""
	var visit func(dir string) error
	visit = func(dir string) error {
		ents, err := x.fs.ReadDir(dir)
		if err != nil {
			return nil // unreadable directories are skipped
		}
		for _, fi := range ents {
			p := fi.Name()
			if dir != "." {
				p = dir + "/" + p
			}
			fk, ok := keyOf(fi)
			if !ok {
				continue
			}
			x.mu.Lock()
			if len(x.paths) < MaxRemembered {
				x.paths[fk] = p
			}
			x.mu.Unlock()
			if fk == k {
				found = p
			}
			if fi.IsDir() {
				if err := visit(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := visit("."); err != nil {
		return "", fmt.Errorf("resolve handle: %w", err)
	}
	if found == "" {
		return "", fmt.Errorf("resolve handle: %w", ErrStale)
	}
	x.mu.Lock()
	x.paths[k] = found
	x.mu.Unlock()
	return found, nil
}

// Forget drops the remembered path of h (a removed file).
func (x *Index) Forget(h []byte) {
	id, dev, ino, err := Parse(h)
	if err != nil || id != x.id {
		return
	}
	x.mu.Lock()
	delete(x.paths, key{dev, ino})
	x.mu.Unlock()
}

// Renamed moves remembered paths from from (and below it, for a directory)
// to to. A file the rename replaced keeps its path until check finds it gone.
func (x *Index) Renamed(from, to string) {
	fi, err := x.fs.Lstat(to)
	if err != nil {
		return
	}
	k, ok := keyOf(fi)
	if !ok {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.paths[k] = to
	if !fi.IsDir() {
		return
	}
	prefix := from + "/"
	for k, p := range x.paths {
		switch {
		case p == from:
			x.paths[k] = to
		case strings.HasPrefix(p, prefix):
			x.paths[k] = to + "/" + p[len(prefix):]
		}
	}
}
