package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunnelmesh/tunnelmesh/registry/coordinator"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/adminclient"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/admincred"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/tlscert"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/jointoken"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serve runs Main with --config in the background until the test ends.
func serve(t *testing.T) (cfgPath, dataDir, url string) {
	return serveWith(t, nil)
}

// serveWith runs Main (setup nil) or ServeWith in the background.
func serveWith(t *testing.T, setup Setup) (cfgPath, dataDir, url string) {
	t.Helper()
	dir := t.TempDir()
	dataDir = filepath.Join(dir, "data")
	port := freePort(t)
	cfgPath = filepath.Join(dir, "coordinator.yaml")
	cfg := fmt.Sprintf("listen: \":%d\"\nstun_listen: \"127.0.0.1:0\"\ndata_dir: %s\n", port, dataDir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		if setup == nil {
			done <- Main(ctx, "tunnelmesh-registry", []string{"--config", cfgPath}, &bytes.Buffer{}, &stderr)
		} else {
			done <- ServeWith(ctx, []string{"--config", cfgPath}, &bytes.Buffer{}, &stderr, setup)
		}
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != ExitOK {
			t.Errorf("Main exited %d: %s", code, stderr.String())
		}
	})
	url = fmt.Sprintf("https://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		pin, err := tlscert.PinFromFile(filepath.Join(dataDir, tlscert.CertFile))
		if err == nil {
			hc := regclient.NewHTTPClient(pin)
			_, err = regclient.Info(context.Background(), hc, url)
			hc.CloseIdleConnections()
			if err == nil {
				return cfgPath, dataDir, url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry did not come up: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func admin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), "tunnelmesh-registry", append([]string{"admin"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestAdminCommands(t *testing.T) {
	cfg, dataDir, url := serve(t)
	if fi, err := os.Stat(admincred.Path(dataDir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin credential file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}

	// tokens create prints only the token, and config may come before or
	// after the command.
	code, out, errOut := admin(t, "--config", cfg, "tokens", "create", "--reusable", "--expiry", "2h", "--tag", "db", "--tag", "prod")
	if code != 0 {
		t.Fatalf("tokens create = %d: %s", code, errOut)
	}
	tok, err := jointoken.Parse(out)
	if err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("tokens create printed %q, want exactly one token line (%v)", out, err)
	}
	code, out2, _ := admin(t, "tokens", "create", "--config", cfg)
	if code != 0 {
		t.Fatalf("tokens create with trailing --config = %d", code)
	}
	single, _ := jointoken.Parse(out2)

	// The token works for a real join.
	key, _ := nodekey.Generate()
	hc := regclient.NewHTTPClient(tok.Pin)
	defer hc.CloseIdleConnections()
	resp, err := regclient.Join(context.Background(), hc, url, api.JoinRequest{Token: tok.String(), Name: "web-1", PublicKey: key.Public(),
		Endpoints: nil}, key)
	if err != nil {
		t.Fatalf("join with CLI token: %v", err)
	}
	if len(resp.Tags) != 2 {
		t.Fatalf("join tags = %v, want [db prod]", resp.Tags)
	}

	code, out, _ = admin(t, "--config", cfg, "tokens", "list")
	if code != 0 || !strings.Contains(out, tok.ID) || !strings.Contains(out, single.ID) || !strings.Contains(out, "db,prod") {
		t.Fatalf("tokens list = %d:\n%s", code, out)
	}
	code, out, _ = admin(t, "--config", cfg, "tokens", "list", "--json")
	var infos []api.TokenInfo
	if code != 0 || json.Unmarshal([]byte(out), &infos) != nil || len(infos) != 2 || infos[0].Uses != 1 {
		t.Fatalf("tokens list --json = %d:\n%s", code, out)
	}
	if code, _, errOut := admin(t, "--config", cfg, "tokens", "revoke", single.ID); code != 0 {
		t.Fatalf("tokens revoke = %d: %s", code, errOut)
	}
	code, out, _ = admin(t, "--config", cfg, "tokens", "list")
	if code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("tokens list after revoke:\n%s", out)
	}

	code, out, _ = admin(t, "--config", cfg, "nodes", "list")
	if code != 0 || !strings.Contains(out, "web-1") || !strings.Contains(out, resp.IP.String()) || !strings.Contains(out, key.Public().Fingerprint()) {
		t.Fatalf("nodes list = %d:\n%s", code, out)
	}
	if code, _, errOut := admin(t, "--config", cfg, "nodes", "remove", "web-1"); code != 0 {
		t.Fatalf("nodes remove = %d: %s", code, errOut)
	}
	code, out, _ = admin(t, "--config", cfg, "nodes", "list", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("nodes list after remove = %d: %q", code, out)
	}
	// Errors from the server reach stderr with a non-zero exit.
	code, _, errOut = admin(t, "--config", cfg, "nodes", "remove", "web-1")
	if code != ExitError || !strings.Contains(errOut, "not_found") {
		t.Fatalf("remove twice = %d %q", code, errOut)
	}

	// Flags and environment override the config.
	cred, _ := admincred.Load(dataDir)
	code, out, errOut = admin(t, "--server", url, "--admin-token", cred, "--pin", tok.Pin, "tokens", "list", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &infos) != nil || len(infos) != 2 {
		t.Fatalf("tokens list with flags only = %d: %s %s", code, out, errOut)
	}
	// The credential from a file (flag or environment) or the environment,
	// so that it does not show in ps.
	credFile := filepath.Join(t.TempDir(), "admin.token")
	emptyFile := filepath.Join(t.TempDir(), "empty.token")
	os.WriteFile(credFile, []byte(cred+"\n"), 0o600)
	os.WriteFile(emptyFile, nil, 0o600)
	code, out, errOut = admin(t, "--server", url, "--admin-token-file", credFile, "--pin", tok.Pin, "tokens", "list", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &infos) != nil || len(infos) != 2 {
		t.Fatalf("tokens list with --admin-token-file = %d: %s %s", code, out, errOut)
	}
	code, _, errOut = admin(t, "--server", url, "--admin-token-file", emptyFile, "--pin", tok.Pin, "tokens", "list")
	if code != ExitError || !strings.Contains(errOut, "--admin-token-file "+emptyFile+": empty file") {
		t.Fatalf("tokens list with an empty --admin-token-file = %d %q", code, errOut)
	}
	code, _, errOut = admin(t, "--server", url, "--admin-token-file", credFile+".none", "--pin", tok.Pin, "tokens", "list")
	if code != ExitError || !strings.Contains(errOut, "--admin-token-file "+credFile+".none: open") {
		t.Fatalf("tokens list with a missing --admin-token-file = %d %q", code, errOut)
	}
	t.Setenv(EnvServer, url)
	t.Setenv(EnvPin, tok.Pin)
	t.Setenv(adminclient.EnvAdminTokenFile, credFile)
	if code, _, errOut = admin(t, "tokens", "list"); code != 0 {
		t.Fatalf("tokens list with TUNNELMESH_ADMIN_TOKEN_FILE = %d %q", code, errOut)
	}
	t.Setenv(EnvAdminToken, cred)
	t.Setenv(adminclient.EnvAdminTokenFile, "")
	if code, _, errOut = admin(t, "tokens", "list"); code != 0 {
		t.Fatalf("tokens list with TUNNELMESH_ADMIN_TOKEN = %d %q", code, errOut)
	}
	t.Setenv(EnvAdminToken, "tma1.wrong-credential-value")
	code, _, errOut = admin(t, "tokens", "list")
	if code != ExitError || !strings.Contains(errOut, "401") {
		t.Fatalf("wrong credential from env = %d %q, want 401", code, errOut)
	}
	// Wrong pin: the TLS connection is refused.
	code, _, errOut = admin(t, "--config", cfg, "--pin", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "--admin-token", cred, "tokens", "list")
	if code != ExitError || !strings.Contains(errOut, "pin") {
		t.Fatalf("wrong pin = %d %q, want a pin error", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{}, ExitUsage},
		{[]string{"tokens"}, ExitUsage},
		{[]string{"tokens", "burn"}, ExitUsage},
		{[]string{"tokens", "revoke"}, ExitUsage},
		{[]string{"nodes", "remove", "a", "b"}, ExitUsage},
		{[]string{"tokens", "create", "--expiry", "soon"}, ExitUsage},
		{[]string{"tokens", "create", "--expiry", "-1h"}, ExitUsage},
		{[]string{"tokens", "create", "--expiry", "2562047h"}, ExitUsage},
		{[]string{"--bogus", "tokens", "list"}, ExitUsage},
		{[]string{"--config", "/nonexistent/c.yaml", "tokens", "list"}, ExitError},
	} {
		var out, errb bytes.Buffer
		if code := Admin(context.Background(), tt.args, &out, &errb); code != tt.want {
			t.Errorf("Admin(%q) = %d, want %d (%s)", tt.args, code, tt.want, errb.String())
		}
		if out.Len() != 0 {
			t.Errorf("Admin(%q) wrote to stdout: %q", tt.args, out.String())
		}
	}
	var out, errb bytes.Buffer
	if code := Serve(context.Background(), []string{"--config", "/nonexistent/c.yaml"}, &out, &errb); code != ExitError {
		t.Errorf("Serve(missing config) = %d, want %d", code, ExitError)
	}
	bad := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(bad, []byte("listen: :1\nlisten_typo: x\n"), 0o600)
	errb.Reset()
	if code := Serve(context.Background(), []string{"--config", bad}, &out, &errb); code != ExitError || !strings.Contains(errb.String(), `unknown key "listen_typo"`) {
		t.Errorf("Serve(bad config) = %d %q", code, errb.String())
	}
	if code := Serve(context.Background(), []string{"extra"}, &out, &errb); code != ExitUsage {
		t.Errorf("Serve(extra args) = %d, want %d", code, ExitUsage)
	}
	out.Reset()
	if code := Main(context.Background(), "tunnelmesh-registry", []string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "tokens create") {
		t.Errorf("help = %d %q", code, out.String())
	}
}

func TestServeWithSetup(t *testing.T) {
	var gotCfg coordinator.Config
	_, _, url := serveWith(t, func(cfg coordinator.Config) (coordinator.Options, error) {
		gotCfg = cfg
		return coordinator.Options{
			Handlers: map[string]http.Handler{api.PathRelay: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })},
			Relays:   []api.Relay{{ID: "coordinator", URL: "wss://example.test:8443/relay"}},
		}, nil
	})
	if gotCfg.Listen == "" || gotCfg.DataDir == "" {
		t.Fatalf("setup got config %+v", gotCfg)
	}
	pin, _ := tlscert.PinFromFile(filepath.Join(gotCfg.DataDir, tlscert.CertFile))
	hc := regclient.NewHTTPClient(pin)
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(url + api.PathRelay)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 299 {
		t.Fatalf("GET %s = %d, want the mounted handler's 299", api.PathRelay, resp.StatusCode)
	}

	var errb bytes.Buffer
	code := ServeWith(context.Background(), nil, &bytes.Buffer{}, &errb, func(coordinator.Config) (coordinator.Options, error) {
		return coordinator.Options{}, errors.New("relay setup failed")
	})
	if code != ExitError || !strings.Contains(errb.String(), "relay setup failed") {
		t.Fatalf("ServeWith with failing setup = %d %q", code, errb.String())
	}
}

func TestMainPolicyValidate(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(context.Background(), "tunnelmesh-registry", []string{"policy", "validate", "-f", "../policy/example.yaml"}, &out, &errb); code != ExitOK {
		t.Fatalf("policy validate example = %d, stderr %s", code, errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - from: [nobody]\n    bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := Main(context.Background(), "tunnelmesh-registry", []string{"policy", "validate", "-f", bad}, &out, &errb); code != 1 {
		t.Fatalf("policy validate bad = %d, want 1; stderr %s", code, errb.String())
	}
	if !strings.Contains(errb.String()+out.String(), "bogus") {
		t.Errorf("error does not name the unknown key: %s", errb.String()+out.String())
	}
}

// TestComposeConfigs: the configuration the Compose demo ships parses, and
// its policy passes its own tests.
func TestComposeConfigs(t *testing.T) {
	if _, err := coordinator.LoadConfig("../../compose/config/coordinator.yaml"); err != nil {
		t.Fatalf("compose coordinator.yaml: %v", err)
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), "tunnelmesh-registry", []string{"policy", "test", "-f", "../../compose/config/policy.yaml"}, &out, &errb); code != ExitOK {
		t.Fatalf("policy test compose/config/policy.yaml = %d:\n%s%s", code, out.String(), errb.String())
	}
}
