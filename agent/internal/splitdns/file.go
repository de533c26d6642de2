package splitdns

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// maxFileSize bounds what is read as a resolv.conf or backup file.
const maxFileSize = 1 << 20

type fileKind string

const (
	kindFile    fileKind = "file"
	kindSymlink fileKind = "symlink"
	kindAbsent  fileKind = "absent"
)

// snapshot is what a path held: a regular file (bytes, permissions,
// owner), a symlink (its target, and for rendering the bytes read through
// it), or nothing.
type snapshot struct {
	Kind    fileKind    `json:"kind"`
	Mode    fs.FileMode `json:"mode,omitempty"` // permission, setuid, setgid and sticky bits
	UID     int         `json:"uid"`
	GID     int         `json:"gid"`
	Target  string      `json:"target,omitempty"`
	Content []byte      `json:"content,omitempty"`
}

// backup is the BackupFile: the original resolv.conf and the hashes of what
// we may have left in its place. Written holds two hashes while a rewrite is
// in flight, so that a crash between saving the backup and renaming the new
// file still finds the file ours.
type backup struct {
	Version  int      `json:"version"`
	Path     string   `json:"path"`
	Original snapshot `json:"original"`
	Written  []string `json:"written"` // hex SHA-256 of the contents we wrote
}

const backupVersion = 1

func backupPath(stateDir string) string { return filepath.Join(stateDir, BackupFile) }

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// readSnapshot reads what path holds now.
func readSnapshot(path string) (snapshot, error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return snapshot{Kind: kindAbsent}, nil
	}
	if err != nil {
		return snapshot{}, err
	}
	s := snapshot{UID: -1, GID: -1}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.UID, s.GID = int(sys.Uid), int(sys.Gid)
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		s.Kind = kindSymlink
		if s.Target, err = os.Readlink(path); err != nil {
			return snapshot{}, err
		}
		// A dangling link reads as empty: there are no servers to keep.
		if b, err := readLimited(path); err == nil {
			s.Content = b
		} else if !errors.Is(err, fs.ErrNotExist) {
			return snapshot{}, err
		}
	case st.Mode().IsRegular():
		s.Kind = kindFile
		s.Mode = st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if s.Content, err = readLimited(path); err != nil {
			return snapshot{}, err
		}
	default:
		return snapshot{}, fmt.Errorf("%s: not a regular file or symlink (%s)", path, st.Mode().Type())
	}
	return s, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	return b, nil
}

// isOurs reports whether s is a regular file holding one of the written
// contents.
func isOurs(s snapshot, written []string) bool {
	if s.Kind != kindFile {
		return false
	}
	return slices.Contains(written, hashOf(s.Content))
}

// writeFile replaces path with data atomically: a temporary file in the same
// directory, with mode perm and (when running as root and uid >= 0) owner
// uid:gid, synced, renamed over path. A path that is a mount point (a
// bind-mounted /etc/resolv.conf, as in containers) cannot be renamed over;
// it is rewritten in place instead, keeping its mode and owner.
func writeFile(path string, data []byte, perm fs.FileMode, uid, gid int) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tunnelmesh-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = func() error {
		defer f.Close()
		if _, err := f.Write(data); err != nil {
			return err
		}
		if err := f.Chmod(perm); err != nil {
			return err
		}
		if uid >= 0 && os.Geteuid() == 0 {
			if err := f.Chown(uid, gid); err != nil {
				return err
			}
		}
		if err := f.Sync(); err != nil {
			return err
		}
		return f.Close()
	}()
	if err == nil {
		err = os.Rename(tmp, path)
		if err == nil {
			syncDir(dir)
			return nil
		}
	}
	os.Remove(tmp)
	if errors.Is(err, syscall.EBUSY) {
		return writeInPlace(path, data)
	}
	return err
}

// writeInPlace truncates and rewrites path. Not atomic: used only where
// rename cannot work.
func writeInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: the rename is done either way
		d.Close()
	}
}

// restoreSnapshot puts s back at path.
func restoreSnapshot(path string, s snapshot) error {
	switch s.Kind {
	case kindFile:
		return writeFile(path, s.Content, s.Mode, s.UID, s.GID)
	case kindSymlink:
		dir, base := filepath.Split(path)
		tmp := filepath.Join(dir, "."+base+".tunnelmesh-link")
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Symlink(s.Target, tmp); err != nil {
			return err
		}
		if s.UID >= 0 && os.Geteuid() == 0 {
			if err := os.Lchown(tmp, s.UID, s.GID); err != nil {
				os.Remove(tmp)
				return err
			}
		}
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return err
		}
		syncDir(dir)
		return nil
	case kindAbsent:
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return fmt.Errorf("unknown kind %q", s.Kind)
}

func saveBackup(path string, b *backup) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(path, append(data, '\n'), 0o600, -1, -1); err != nil {
		return fmt.Errorf("save backup: %w", err)
	}
	return nil
}

// loadBackup reads and checks a backup file; fs.ErrNotExist passes through.
func loadBackup(path string) (*backup, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b backup
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case b.Version != backupVersion:
		return nil, fmt.Errorf("%s: version %d, want %d", path, b.Version, backupVersion)
	case b.Path == "":
		return nil, fmt.Errorf("%s: no path", path)
	case b.Original.Kind != kindFile && b.Original.Kind != kindSymlink && b.Original.Kind != kindAbsent:
		return nil, fmt.Errorf("%s: original kind %q", path, b.Original.Kind)
	case b.Original.Kind == kindSymlink && b.Original.Target == "":
		return nil, fmt.Errorf("%s: symlink without target", path)
	case len(b.Written) == 0:
		return nil, fmt.Errorf("%s: no written hash", path)
	}
	return &b, nil
}
