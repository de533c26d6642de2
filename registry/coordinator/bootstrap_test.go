package coordinator_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
)

// TestBootstrapTokenFile: the first start writes a reusable join token that
// admits several nodes; a restart keeps the file (and the token) as it is.
func TestBootstrapTokenFile(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.BootstrapTokenFile = filepath.Join(t.TempDir(), "shared", "join.token")
	tc := start(t, cfg, coordinator.Options{})
	b, err := os.ReadFile(cfg.BootstrapTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cfg.BootstrapTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v, want 0600", fi.Mode().Perm())
	}
	tok := strings.TrimSpace(string(b))
	tc.join(t, tok, "alpha")
	tc.join(t, tok, "bravo")
	tc.stop()

	tc2 := start(t, cfg, coordinator.Options{})
	b2, err := os.ReadFile(cfg.BootstrapTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(b2) != string(b) {
		t.Fatalf("token file rewritten at restart: %q, was %q", b2, b)
	}
	tc2.join(t, tok, "charlie")
}
