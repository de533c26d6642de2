// Package rootfs is the billy.Filesystem nfsd serves an export through: a
// directory opened as an os.Root, so that every access, whatever its ".."
// components or symbolic links, stays inside the directory (the kernel
// resolves each component relative to an open directory descriptor; a
// symlink that leads out, or any absolute symlink, is refused with an
// error). Symlinks may be created with any target: they are text, and are
// only ever followed inside the root.
//
// Ownership is squashed: when nfsd runs as root, everything created belongs
// to the export's owner, and chown requests set the owner whatever uid/gid
// they ask for. Chmod drops the setuid and setgid bits. A read-only view
// (ReadOnly) refuses every change with EROFS and reports no write
// capability, which go-nfs turns into NFS3ERR_ROFS.
package rootfs

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5"
)

// Owner is who squashed files belong to.
type Owner struct{ UID, GID int }

// FS is one export's directory.
type FS struct {
	root     *os.Root
	dir      string
	owner    Owner
	squash   bool // chown to owner (only possible as root)
	readOnly bool
	// renamed, when set, hears every successful rename (clean relative paths).
	renamed func(from, to string)
}

// Open opens dir as an export rooted there. Close the FS's root with Close.
func Open(dir string, owner Owner) (*FS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open export dir: %w", err)
	}
	st, err := r.Stat(".")
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("open export dir: %w", err)
	}
	if !st.IsDir() {
		r.Close()
		return nil, fmt.Errorf("open export dir %s: not a directory", dir)
	}
	return &FS{root: r, dir: dir, owner: owner, squash: os.Geteuid() == 0}, nil
}

// Close closes the directory.
func (f *FS) Close() error { return f.root.Close() }

// ReadOnly returns a view of the same directory that refuses changes.
func (f *FS) ReadOnly() *FS {
	v := *f
	v.readOnly = true
	return &v
}

// IsReadOnly reports whether f refuses changes.
func (f *FS) IsReadOnly() bool { return f.readOnly }

// OnRename sets a function told of every rename made through f or its views.
// Call it before serving.
func (f *FS) OnRename(fn func(from, to string)) { f.renamed = fn }

// Clean turns an NFS path into the relative path os.Root takes: no leading
// slash, "." for the root.
func Clean(name string) string {
	name = path.Clean("/" + strings.ReplaceAll(name, "\\", "/"))
	if name == "/" {
		return "."
	}
	return name[1:]
}

func (f *FS) refuse(op, name string) error {
	return &fs.PathError{Op: op, Path: name, Err: syscall.EROFS}
}

// Capabilities drops WriteCapability for a read-only view.
func (f *FS) Capabilities() billy.Capability {
	if f.readOnly {
		return billy.ReadCapability | billy.SeekCapability
	}
	return billy.DefaultCapabilities
}

// Create creates or truncates name.
func (f *FS) Create(name string) (billy.File, error) {
	return f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// Open opens name for reading.
func (f *FS) Open(name string) (billy.File, error) { return f.OpenFile(name, os.O_RDONLY, 0) }

const writeFlags = os.O_WRONLY | os.O_RDWR | os.O_CREATE | os.O_TRUNC | os.O_APPEND

// OpenFile opens name; a file it creates belongs to the owner.
func (f *FS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	name = Clean(name)
	if f.readOnly && flag&writeFlags != 0 {
		return nil, f.refuse("open", name)
	}
	of, err := f.root.OpenFile(name, flag, perm&^(os.ModeSetuid|os.ModeSetgid))
	if err != nil {
		return nil, err
	}
	if flag&os.O_CREATE != 0 && f.squash {
		if err := of.Chown(f.owner.UID, f.owner.GID); err != nil {
			of.Close()
			return nil, err
		}
	}
	return &file{File: of, name: name}, nil
}

// Stat stats name, following symlinks inside the root.
func (f *FS) Stat(name string) (os.FileInfo, error) { return f.root.Stat(Clean(name)) }

// Lstat stats name without following a final symlink.
func (f *FS) Lstat(name string) (os.FileInfo, error) { return f.root.Lstat(Clean(name)) }

// Rename renames from to to, both inside the root.
func (f *FS) Rename(from, to string) error {
	from, to = Clean(from), Clean(to)
	if f.readOnly {
		return f.refuse("rename", from)
	}
	if from == "." || to == "." {
		return &fs.PathError{Op: "rename", Path: from, Err: syscall.EBUSY}
	}
	if err := f.root.Rename(from, to); err != nil {
		return err
	}
	if f.renamed != nil {
		f.renamed(from, to)
	}
	return nil
}

// Remove removes a file or an empty directory.
func (f *FS) Remove(name string) error {
	name = Clean(name)
	if f.readOnly {
		return f.refuse("remove", name)
	}
	if name == "." {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.EBUSY}
	}
	return f.root.Remove(name)
}

// Join joins path elements with '/'.
func (f *FS) Join(elem ...string) string { return path.Join(elem...) }

// TempFile creates a new file in dir with a random name after prefix.
func (f *FS) TempFile(dir, prefix string) (billy.File, error) {
	var b [8]byte
	rand.Read(b[:])
	return f.OpenFile(path.Join(Clean(dir), prefix+hex.EncodeToString(b[:])), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

// ReadDir lists a directory.
func (f *FS) ReadDir(name string) ([]os.FileInfo, error) {
	d, err := f.root.Open(Clean(name))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdir(-1)
}

// MkdirAll creates a directory and its missing parents, owned by the owner.
func (f *FS) MkdirAll(name string, perm os.FileMode) error {
	name = Clean(name)
	if f.readOnly {
		return f.refuse("mkdir", name)
	}
	if err := f.root.MkdirAll(name, perm&os.ModePerm); err != nil {
		return err
	}
	if f.squash {
		return f.root.Lchown(name, f.owner.UID, f.owner.GID)
	}
	return nil
}

// Symlink creates link with the given target text.
func (f *FS) Symlink(target, link string) error {
	link = Clean(link)
	if f.readOnly {
		return f.refuse("symlink", link)
	}
	if err := f.root.Symlink(target, link); err != nil {
		return err
	}
	if f.squash {
		return f.root.Lchown(link, f.owner.UID, f.owner.GID)
	}
	return nil
}

// Readlink returns a symlink's target text.
func (f *FS) Readlink(link string) (string, error) { return f.root.Readlink(Clean(link)) }

// Chroot returns the subdirectory p as a filesystem of its own.
func (f *FS) Chroot(p string) (billy.Filesystem, error) {
	r, err := f.root.OpenRoot(Clean(p))
	if err != nil {
		return nil, err
	}
	v := *f
	v.root, v.dir, v.renamed = r, path.Join(f.dir, Clean(p)), nil
	return &v, nil
}

// Root returns the exported directory.
func (f *FS) Root() string { return f.dir }

// Chmod sets permission bits (and the sticky bit), never setuid or setgid.
func (f *FS) Chmod(name string, mode os.FileMode) error {
	name = Clean(name)
	if f.readOnly {
		return f.refuse("chmod", name)
	}
	return f.root.Chmod(name, mode&(os.ModePerm|os.ModeSticky))
}

// Lchown squashes: the file becomes the owner's whatever uid/gid asked for.
func (f *FS) Lchown(name string, uid, gid int) error {
	name = Clean(name)
	if f.readOnly {
		return f.refuse("chown", name)
	}
	if !f.squash {
		return nil
	}
	return f.root.Lchown(name, f.owner.UID, f.owner.GID)
}

// Chown squashes like Lchown.
func (f *FS) Chown(name string, uid, gid int) error { return f.Lchown(name, uid, gid) }

// Chtimes sets access and modification times.
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	name = Clean(name)
	if f.readOnly {
		return f.refuse("chtimes", name)
	}
	return f.root.Chtimes(name, atime, mtime)
}

// Link makes a hard link inside the root.
func (f *FS) Link(oldname, newname string) error {
	if f.readOnly {
		return f.refuse("link", newname)
	}
	return f.root.Link(Clean(oldname), Clean(newname))
}

// Mknod, Mkfifo and Socket are refused: an export holds files, not devices.
func (f *FS) Mknod(name string, mode, major, minor uint32) error {
	return &fs.PathError{Op: "mknod", Path: name, Err: syscall.EPERM}
}

// Mkfifo is refused (see Mknod).
func (f *FS) Mkfifo(name string, mode uint32) error {
	return &fs.PathError{Op: "mkfifo", Path: name, Err: syscall.EPERM}
}

// Socket is refused (see Mknod).
func (f *FS) Socket(name string) error {
	return &fs.PathError{Op: "socket", Path: name, Err: syscall.EPERM}
}

// file is an *os.File with billy's Lock/Unlock and the name it was opened by.
type file struct {
	*os.File
	name string
}

func (f *file) Name() string { return f.name }

func (f *file) Lock() error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", f.name, err)
	}
	return nil
}

func (f *file) Unlock() error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		return fmt.Errorf("unlock %s: %w", f.name, err)
	}
	return nil
}

var (
	_ billy.Filesystem = (*FS)(nil)
	_ billy.Change     = (*FS)(nil)
	_ billy.Capable    = (*FS)(nil)
)
