package adminclient

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/registry/internal/admincred"
	"github.com/tunnelmesh/tunnelmesh/registry/internal/tlscert"
)

// registryDir writes a registry configuration whose data directory holds an
// admin credential and a self-signed certificate, and returns the config
// path, the credential and the certificate.
func registryDir(t *testing.T, listen string) (string, string, tls.Certificate) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cred, err := admincred.LoadOrCreate(data)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := tlscert.Load(data, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(cfg, []byte("listen: \""+listen+"\"\ndata_dir: \""+data+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, cred, cert
}

func clearEnv(t *testing.T) {
	for _, k := range []string{EnvServer, EnvAdminToken, EnvAdminTokenFile, EnvPin} {
		t.Setenv(k, "")
	}
}

func TestTargetPrecedence(t *testing.T) {
	cfg, cred, _ := registryDir(t, "0.0.0.0:9443")
	fileTok := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(fileTok, []byte("  file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		target     Target
		env        map[string]string
		wantURL    string
		wantSecret string
	}{
		{"config only", Target{Config: cfg}, nil, "https://127.0.0.1:9443", cred},
		{"environment over config", Target{Config: cfg},
			map[string]string{EnvServer: "https://env.example:1", EnvAdminToken: "env-token"}, "https://env.example:1", "env-token"},
		{"flags over environment", Target{Config: cfg, Server: "https://flag.example:2/", Token: "flag-token"},
			map[string]string{EnvServer: "https://env.example:1", EnvAdminToken: "env-token"}, "https://flag.example:2", "flag-token"},
		{"blank flags fall through", Target{Config: cfg, Server: "  ", Token: "\t"},
			map[string]string{EnvServer: "https://env.example:1", EnvAdminToken: "env-token"}, "https://env.example:1", "env-token"},
		{"no config file", Target{Server: "https://flag.example:2", Token: "flag-token", Pin: "sha256/AAAA"}, nil,
			"https://flag.example:2", "flag-token"},
		{"token file flag", Target{Config: cfg, TokenFile: fileTok},
			map[string]string{EnvAdminToken: "env-token"}, "https://127.0.0.1:9443", "file-token"},
		{"token file from the environment", Target{Config: cfg},
			map[string]string{EnvAdminTokenFile: fileTok}, "https://127.0.0.1:9443", "file-token"},
		{"token environment over token file environment", Target{Config: cfg},
			map[string]string{EnvAdminToken: "env-token", EnvAdminTokenFile: fileTok}, "https://127.0.0.1:9443", "env-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := tt.target.Client()
			if err != nil {
				t.Fatalf("Client() error = %v", err)
			}
			if c.BaseURL != tt.wantURL || c.Credential != tt.wantSecret {
				t.Errorf("Client() = %q, %q; want %q, %q", c.BaseURL, c.Credential, tt.wantURL, tt.wantSecret)
			}
		})
	}
}

// The pin read from the registry's certificate lets the client reach a
// server with that certificate.
func TestTargetPinFromCertificate(t *testing.T) {
	clearEnv(t)
	cfg, _, cert := registryDir(t, "127.0.0.1:9443")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	c, err := Target{Config: cfg, Server: srv.URL}.Client()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.HTTP.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET with the pin from the certificate: %v", err)
	}
	resp.Body.Close()
	// Another certificate's pin is refused.
	other, _, _ := registryDir(t, "127.0.0.1:9443")
	c, err = Target{Config: other, Server: srv.URL}.Client()
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := c.HTTP.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("GET with another certificate's pin succeeded")
	}
}

func TestTargetErrors(t *testing.T) {
	clearEnv(t)
	empty := t.TempDir()
	noCred := filepath.Join(empty, "nocred.yaml")
	os.WriteFile(noCred, []byte("data_dir: \""+filepath.Join(empty, "data")+"\"\n"), 0o600)
	noCredEmpty := filepath.Join(empty, "empty.token")
	os.WriteFile(noCredEmpty, []byte(" \n"), 0o600)
	tests := []struct {
		name    string
		target  Target
		wantErr string
	}{
		{"missing config file", Target{Config: filepath.Join(empty, "missing.yaml")}, "missing.yaml"},
		{"no credential", Target{Config: noCred}, "--admin-token"},
		{"no certificate for the pin", Target{Config: noCred, Token: "tok"}, "--pin"},
		{"token file missing", Target{Config: noCred, TokenFile: filepath.Join(empty, "none")}, "--admin-token-file " + filepath.Join(empty, "none") + ": open"},
		{"token file empty", Target{Config: noCred, TokenFile: noCredEmpty}, "--admin-token-file " + noCredEmpty + ": empty"},
		{"token and token file", Target{Config: noCred, Token: "tok", TokenFile: noCredEmpty}, "--admin-token and --admin-token-file exclude each other"},
		{"token file from the environment missing", Target{Config: noCred, Pin: "sha256/AAAA"}, EnvAdminTokenFile + " " + filepath.Join(empty, "envnone") + ": open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.name, "environment") {
				t.Setenv(EnvAdminTokenFile, filepath.Join(empty, "envnone"))
			}
			if _, err := tt.target.Client(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Client() error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}
