package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The example configuration parses through the command line, and flags
// override it.
func TestExampleConfig(t *testing.T) {
	cfg, _, err := loadConfig([]string{"-config", "../../internal/config/example.yaml", "-listen", "127.0.0.1:8443"}, new(bytes.Buffer))
	if err != nil {
		t.Fatalf("loadConfig(example.yaml) = %v", err)
	}
	if cfg.ID != "relay-eu-1" || cfg.Listen != "127.0.0.1:8443" || cfg.Metrics != "127.0.0.1:9090" {
		t.Errorf("loadConfig(example.yaml -listen 127.0.0.1:8443) = %+v", cfg)
	}
}

// An unknown key fails the start with an error naming the file and the
// key path, before anything listens.
func TestConfigUnknownKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.yaml")
	os.WriteFile(path, []byte("listen: \":443\"\ntls:\n  state_dir: /tmp/x\n  hostz: [relay.example.com]\n"), 0o644)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-config", path}, new(bytes.Buffer), &stderr)
	want := path + ": parse relay config: tls.hostz: unknown key (line 4)"
	if code != exitError || !strings.Contains(stderr.String(), want) {
		t.Errorf("run(-config %s) = %d, %q; want %d and %q", path, code, stderr.String(), exitError, want)
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		out, errIn string
	}{
		{"version", []string{"-version"}, exitOK, "tunnelmesh-relay dev\n", ""},
		{"double-dash version", []string{"--version"}, exitOK, "tunnelmesh-relay dev\n", ""},
		{"bad flag", []string{"-listn", ":1"}, exitUsage, "", "flag provided but not defined: -listn"},
		{"argument", []string{"relay.yaml"}, exitUsage, "", "unexpected arguments"},
		{"bad flag value", []string{"-listen", "nowhere"}, exitError, "", `listen: "nowhere" is not host:port`},
		{"missing file", []string{"-config", "/nonexistent.yaml"}, exitError, "", "load relay config:"},
		{"help", []string{"-h"}, exitOK, "", "-state-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code || stdout.String() != tt.out || !strings.Contains(stderr.String(), tt.errIn) {
				t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, %q, stderr containing %q",
					tt.args, code, stdout.String(), stderr.String(), tt.code, tt.out, tt.errIn)
			}
		})
	}
}
