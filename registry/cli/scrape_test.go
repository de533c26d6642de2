package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/scrapecred"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/tlscert"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// TestScrapeTokenCommands: a token made by `admin scrape-tokens create`
// opens the service discovery endpoint of the running registry, until it
// is revoked.
func TestScrapeTokenCommands(t *testing.T) {
	cfg, dataDir, url := serve(t)
	pin, err := tlscert.PinFromFile(filepath.Join(dataDir, tlscert.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	hc := regclient.NewHTTPClient(pin)
	defer hc.CloseIdleConnections()
	sd := func(token string) int {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url+scrapecred.PathSD, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := sd(""); code != http.StatusUnauthorized {
		t.Fatalf("sd without a token = %d, want 401", code)
	}

	code, out, errOut := admin(t, "--config", cfg, "scrape-tokens", "create", "--name", "prometheus")
	if code != 0 {
		t.Fatalf("scrape-tokens create = %d: %s", code, errOut)
	}
	tok := strings.TrimSpace(out)
	if code := sd(tok); code != http.StatusOK {
		t.Fatalf("sd with the created token = %d, want 200", code)
	}

	file := filepath.Join(t.TempDir(), "scrape.token")
	if code, _, errOut := admin(t, "scrape-tokens", "create", "--config", cfg, "--out", file, "--expiry", "720h"); code != 0 {
		t.Fatalf("scrape-tokens create --out = %d: %s", code, errOut)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("--out file mode %v, want 0600", fi.Mode().Perm())
	}
	if code := sd(strings.TrimSpace(string(b))); code != http.StatusOK {
		t.Fatalf("sd with the --out token = %d, want 200", code)
	}

	code, out, _ = admin(t, "--config", cfg, "scrape-tokens", "list", "--json")
	var infos []scrapecred.Info
	if code != 0 || json.Unmarshal([]byte(out), &infos) != nil || len(infos) != 2 {
		t.Fatalf("scrape-tokens list --json = %d %q, want two tokens", code, out)
	}
	for _, in := range infos {
		if (in.Name == "prometheus") != in.ExpiresAt.IsZero() {
			t.Errorf("list = %+v, want prometheus without expiry and the other with one", infos)
		}
	}
	if strings.Contains(out, tok[strings.LastIndex(tok, ".")+1:]) {
		t.Error("list shows a token's secret")
	}
	id := strings.Split(tok, ".")[1]
	if code, _, errOut := admin(t, "--config", cfg, "scrape-tokens", "revoke", id); code != 0 {
		t.Fatalf("scrape-tokens revoke = %d: %s", code, errOut)
	}
	if code := sd(tok); code != http.StatusUnauthorized {
		t.Fatalf("sd with a revoked token = %d, want 401", code)
	}
	if code, _, _ := admin(t, "--config", cfg, "scrape-tokens", "revoke", id); code != ExitError {
		t.Errorf("revoking twice = %d, want %d", code, ExitError)
	}
	if code, _, _ := admin(t, "--config", cfg, "scrape-tokens", "frobnicate"); code != ExitUsage {
		t.Errorf("unknown subcommand = %d, want %d", code, ExitUsage)
	}
	if code, _, _ := admin(t, "--config", cfg, "scrape-tokens", "create", "--expiry", "-1h"); code != ExitUsage {
		t.Errorf("negative expiry = %d, want %d", code, ExitUsage)
	}
}
