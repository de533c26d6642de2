package coordinator_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/scrapecred"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// TestScrapeTokenFile: the first start writes a scrape token and the
// registry's certificate; a client that trusts only that certificate (as
// Prometheus's tls_config.ca_file does) reaches the service discovery
// with the token. A restart keeps the token.
func TestScrapeTokenFile(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	shared := t.TempDir()
	cfg.ScrapeTokenFile = filepath.Join(shared, "scrape.token")
	tc := start(t, cfg, coordinator.Options{})
	tokB, err := os.ReadFile(cfg.ScrapeTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(cfg.ScrapeTokenFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("scrape token file mode %v, want 0600", fi.Mode().Perm())
	}
	caPEM, err := os.ReadFile(filepath.Join(shared, coordinator.ScrapeCAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("%s holds no certificate", coordinator.ScrapeCAFile)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	get := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, tc.URL()+scrapecred.PathSD, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET sd trusting %s: %v", coordinator.ScrapeCAFile, err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	tok := strings.TrimSpace(string(tokB))
	if code := get(tok); code != http.StatusOK {
		t.Fatalf("GET sd with the bootstrap scrape token = %d, want 200", code)
	}
	if code := get("tms1.x.y"); code != http.StatusUnauthorized {
		t.Fatalf("GET sd with a made-up token = %d, want 401", code)
	}
	tc.stop()

	tc2 := start(t, cfg, coordinator.Options{})
	tokB2, _ := os.ReadFile(cfg.ScrapeTokenFile)
	if string(tokB2) != string(tokB) {
		t.Fatal("scrape token file rewritten at restart")
	}
	tc = tc2
	if code := get(tok); code != http.StatusOK {
		t.Fatalf("GET sd after restart = %d, want 200", code)
	}
}

func TestScrapeTokenFileClash(t *testing.T) {
	dir := t.TempDir()
	_, err := coordinator.ParseConfig([]byte("data_dir: " + dir + "\nbootstrap_token_file: /b/x\nscrape_token_file: /b/x\n"))
	if err == nil || !strings.Contains(err.Error(), "scrape_token_file") {
		t.Errorf("ParseConfig(same file twice) = %v, want an error naming scrape_token_file", err)
	}
}

// TestExpiryMetrics: /metrics carries the TLS certificate's expiry and that
// of every expiring scrape token, which the alert rules watch.
func TestExpiryMetrics(t *testing.T) {
	tc := startDefault(t)
	resp, err := tc.admin.CreateScrapeToken(context.Background(), scrapecred.CreateRequest{Name: "prom", Expiry: api.Duration(72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := tc.hc.Get(tc.URL() + api.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	for _, want := range []string{
		"tunnelmesh_registry_tls_cert_expiry_timestamp_seconds ",
		fmt.Sprintf(`tunnelmesh_registry_scrape_token_expiry_timestamp_seconds{id=%q,name="prom"} %s`, resp.Info.ID, strconv.FormatFloat(float64(resp.Info.ExpiresAt.Unix()), 'g', -1, 64)),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
