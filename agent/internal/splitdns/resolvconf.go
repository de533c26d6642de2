package splitdns

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
)

// resolvConf manages a resolv.conf file (see render and the package doc).
type resolvConf struct {
	path       string
	backupPath string
	log        *slog.Logger

	bk *backup // the saved original; nil while the file is not ours
}

func (r *resolvConf) apply(cfg Config) error {
	cur, err := readSnapshot(r.path)
	if err != nil {
		return fmt.Errorf("read %s: %w", r.path, err)
	}
	if r.bk != nil && !isOurs(cur, r.bk.Written) {
		// A DHCP client or an admin rewrote it: that is the original now.
		r.log.Warn("resolv.conf rewritten by someone else; taking it as the new original", "path", r.path)
		r.bk = nil
	}
	fresh := r.bk == nil
	if fresh {
		r.bk = &backup{Version: backupVersion, Path: r.path, Original: cur}
	}
	want := render(r.bk.Original.Content, cfg, r.backupPath)
	h := hashOf(want)
	var keep []string // the hash of what is there now, if it is ours
	if !fresh {
		keep = []string{hashOf(cur.Content)}
	}
	if slices.Equal(keep, []string{h}) {
		return nil // already in place
	}
	r.bk.Written = append(keep, h)
	if err := saveBackup(r.backupPath, r.bk); err != nil {
		if fresh {
			r.bk = nil
		}
		return err
	}
	perm, uid, gid := fs.FileMode(0o644), -1, -1
	if o := r.bk.Original; o.Kind == kindFile {
		perm, uid, gid = o.Mode, o.UID, o.GID
	}
	if err := writeFile(r.path, want, perm, uid, gid); err != nil {
		werr := fmt.Errorf("write %s: %w", r.path, err)
		// The file still holds what it held; so must the backup.
		if fresh {
			r.bk = nil
			if err := os.Remove(r.backupPath); err != nil {
				return errors.Join(werr, fmt.Errorf("remove backup: %w", err))
			}
			return werr
		}
		r.bk.Written = keep
		return errors.Join(werr, saveBackup(r.backupPath, r.bk))
	}
	r.bk.Written = []string{h}
	if err := saveBackup(r.backupPath, r.bk); err != nil {
		// Not fatal: the backup on disk lists h too.
		r.log.Warn("trim backup", "err", err)
	}
	r.log.Info("mesh dns via resolv.conf", "path", r.path, "zone", cfg.Zone, "servers", cfg.Servers,
		"original", r.bk.Original.Kind)
	return nil
}

func (r *resolvConf) revert() error {
	if r.bk == nil {
		return nil
	}
	if err := restoreIfOurs(r.bk, r.log); err != nil {
		return err
	}
	r.bk = nil
	if err := os.Remove(r.backupPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove backup: %w", err)
	}
	return nil
}

// restoreIfOurs puts the original back unless the file is no longer what we
// wrote, in which case whoever changed it owns it and it is left alone.
func restoreIfOurs(bk *backup, log *slog.Logger) error {
	cur, err := readSnapshot(bk.Path)
	if err != nil {
		return fmt.Errorf("read %s: %w", bk.Path, err)
	}
	if !isOurs(cur, bk.Written) {
		log.Warn("resolv.conf changed by someone else since tunnelmesh wrote it; left as is", "path", bk.Path)
		return nil
	}
	if err := restoreSnapshot(bk.Path, bk.Original); err != nil {
		return fmt.Errorf("restore %s: %w", bk.Path, err)
	}
	log.Info("resolv.conf restored", "path", bk.Path, "original", bk.Original.Kind)
	return nil
}

// recoverResolvConf restores the resolv.conf a crashed run left rewritten,
// if the state directory holds its backup.
func recoverResolvConf(stateDir string, log *slog.Logger) error {
	p := backupPath(stateDir)
	bk, err := loadBackup(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recover resolv.conf: %w (fix resolv.conf by hand if needed, then remove the backup)", err)
	}
	log.Info("restoring resolv.conf left by an earlier run", "path", bk.Path, "backup", p)
	if err := restoreIfOurs(bk, log); err != nil {
		return fmt.Errorf("recover resolv.conf: %w", err)
	}
	// Temporary files of a write the crash interrupted.
	dir, base := filepath.Split(bk.Path)
	if left, err := filepath.Glob(filepath.Join(dir, "."+base+".tunnelmesh-*")); err == nil {
		for _, f := range left {
			if err := os.Remove(f); err != nil {
				log.Warn("remove temporary file", "path", f, "err", err)
			}
		}
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("recover resolv.conf: remove backup: %w", err)
	}
	return nil
}
