package coordinator_test

import (
	"os"
	"path/filepath"
	"slices"
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

// TestBootstrapTokensTagged: each bootstrap_tokens entry writes its own token,
// and nodes joining with it carry its tags.
func TestBootstrapTokensTagged(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	shared := t.TempDir()
	cfg.BootstrapTokenFile = filepath.Join(shared, "join.token")
	cfg.BootstrapTokens = []coordinator.BootstrapToken{{File: filepath.Join(shared, "dns.token"), Tags: []string{"dns"}}}
	tc := start(t, cfg, coordinator.Options{})
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	plain, dns := read(cfg.BootstrapTokenFile), read(cfg.BootstrapTokens[0].File)
	if plain == dns {
		t.Fatal("bootstrap_tokens wrote the same token as bootstrap_token_file")
	}
	if got := tc.join(t, dns, "resolver").join.Tags; !slices.Contains(got, "dns") {
		t.Errorf("node joined with the dns bootstrap token has tags %v, want dns", got)
	}
	if got := tc.join(t, plain, "plain").join.Tags; len(got) != 0 {
		t.Errorf("node joined with the plain bootstrap token has tags %v, want none", got)
	}
}

func TestBootstrapTokensValidate(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"missing file", "bootstrap_tokens:\n  - tags: [dns]\n", "bootstrap_tokens[0].file: required"},
		{"bad tag", "bootstrap_tokens:\n  - file: /x\n    tags: [Not_A_Label]\n", "bootstrap_tokens[0].tags[0]"},
		{"file twice", "bootstrap_token_file: /x\nbootstrap_tokens:\n  - file: /x\n", "bootstrap_tokens[0].file: \"/x\" is used twice"},
		{"unknown key", "bootstrap_tokens:\n  - file: /x\n    tag: [dns]\n", "tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := coordinator.ParseConfig([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseConfig(%q) = %v, want error containing %q", tt.yaml, err, tt.want)
			}
		})
	}
}
