// Package admincred holds the registry's admin credential: a random secret
// written once to the data directory with mode 0600 and presented by the
// admin CLI as "Authorization: Bearer <credential>".
package admincred

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FileName is the credential's file name in the data directory.
const FileName = "admin.token"

// Path returns the credential file in dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, FileName) }

// LoadOrCreate reads the credential in dataDir, creating it on first use.
func LoadOrCreate(dataDir string) (string, error) {
	s, err := Load(dataDir)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("create admin credential: %w", err)
	}
	s = "tma1." + base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create admin credential: %w", err)
	}
	f, err := os.OpenFile(Path(dataDir), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create admin credential: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("create admin credential: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("create admin credential: %w", err)
	}
	return s, nil
}

// Load reads the credential in dataDir.
func Load(dataDir string) (string, error) {
	b, err := os.ReadFile(Path(dataDir))
	if err != nil {
		return "", fmt.Errorf("read admin credential: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < 16 {
		return "", fmt.Errorf("read admin credential %s: too short", Path(dataDir))
	}
	return s, nil
}

// Checker compares presented credentials with the real one in constant time.
type Checker struct{ hash [32]byte }

// NewChecker returns a Checker for the credential.
func NewChecker(cred string) Checker { return Checker{hash: sha256.Sum256([]byte(cred))} }

// Check reports whether presented is the credential.
func (c Checker) Check(presented string) bool {
	h := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(h[:], c.hash[:]) == 1
}

// New returns a fresh credential.
func New() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("create admin credential: %w", err)
	}
	return "tma1." + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// LoadShared returns the credential every replica of a shared store
// accepts: the first replica to start stores its own (the one in dataDir,
// else a new one) through shared; every replica writes the stored one into
// dataDir (0600) for the admin CLI on its host.
func LoadShared(dataDir string, shared func(create func() ([]byte, error)) ([]byte, error)) (string, error) {
	b, err := shared(func() ([]byte, error) {
		s, err := Load(dataDir)
		if errors.Is(err, os.ErrNotExist) {
			s, err = New()
		}
		return []byte(s), err
	})
	if err != nil {
		return "", fmt.Errorf("load shared admin credential: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < 16 {
		return "", fmt.Errorf("load shared admin credential: stored credential too short")
	}
	if old, err := Load(dataDir); err == nil && old == s {
		return s, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("load shared admin credential: %w", err)
	}
	tmp := Path(dataDir) + ".tmp"
	if err := os.WriteFile(tmp, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("load shared admin credential: %w", err)
	}
	if err := os.Rename(tmp, Path(dataDir)); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("load shared admin credential: %w", err)
	}
	return s, nil
}
