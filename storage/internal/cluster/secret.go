package cluster

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tunnelmesh/tunnelmesh/storage/internal/config"
)

// maxSecretFile bounds the secret file.
const maxSecretFile = 4 << 10

// LoadSecret reads the cluster secret from path: at least
// config.MinSecretLen bytes once surrounding whitespace is removed, in a
// regular file no one but its owner may read or write. Errors name the key
// cluster.secret_file and never include the secret.
func LoadSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cluster.secret_file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cluster.secret_file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cluster.secret_file: %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("cluster.secret_file: %s: mode %04o: must not be readable or writable by group or others (chmod 600)", path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("cluster.secret_file: %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("cluster.secret_file: %s: larger than %d bytes", path, maxSecretFile)
	}
	b = bytes.TrimSpace(b)
	if len(b) < config.MinSecretLen {
		return nil, fmt.Errorf("cluster.secret_file: %s: %d bytes: want at least %d (e.g. head -c 32 /dev/urandom | base64)", path, len(b), config.MinSecretLen)
	}
	return b, nil
}

// CreateSecret writes a random secret (32 bytes, base64) to path unless the
// file exists, atomically: of several nodes starting at once and sharing
// the file, one writes it and every one reads the same.
func CreateSecret(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("cluster.secret_file: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cluster.secret_file: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cluster.secret_file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(raw[:]) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cluster.secret_file: %w", err)
	}
	// A link, unlike a rename, fails when another node wrote the file first.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cluster.secret_file: %w", err)
	}
	return nil
}
