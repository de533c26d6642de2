package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The example configuration parses through the command line, and flags
// override it.
func TestExampleConfig(t *testing.T) {
	cfg, _, err := loadConfig([]string{"-config", "../../internal/config/example.yaml", "-listen", "127.0.0.1:2222"}, new(bytes.Buffer))
	if err != nil {
		t.Fatalf("loadConfig(example.yaml) = %v", err)
	}
	if cfg.Listen != "127.0.0.1:2222" || cfg.ForwardTo != "127.0.0.1:7600" || cfg.IdleTimeout != 60*time.Second ||
		cfg.Credentials != "/var/lib/tunnelmesh/credentials.json" {
		t.Errorf("loadConfig(example.yaml -listen 127.0.0.1:2222) = %+v", cfg)
	}
}

// An unknown key fails the start with an error naming the file and the
// key path, before anything listens.
func TestConfigUnknownKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sshgw.yaml")
	os.WriteFile(path, []byte("credentials: /c.json\nforward_to: 127.0.0.1:7600\nlog:\n  level: info\n  colour: true\n"), 0o644)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-config", path}, new(bytes.Buffer), &stderr)
	want := path + ": parse sshgw config: log.colour: unknown key (line 5)"
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
		{"version", []string{"-version"}, exitOK, "tunnelmesh-sshgw dev\n", ""},
		{"double-dash version", []string{"--version"}, exitOK, "tunnelmesh-sshgw dev\n", ""},
		{"bad flag", []string{"-listn", ":1"}, exitUsage, "", "flag provided but not defined: -listn"},
		{"argument", []string{"sshgw.yaml"}, exitUsage, "", "unexpected arguments"},
		{"no identity", []string{"-forward-to", "127.0.0.1:7600"}, exitError, "", "credentials: set credentials"},
		{"forward not loopback", []string{"-credentials", "/c.json", "-forward-to", "10.0.0.1:7600"}, exitError, "", "forward_to:"},
		{"missing credentials file", []string{"-credentials", "/nonexistent.json", "-forward-to", "127.0.0.1:7600", "-listen", "127.0.0.1:0"},
			exitError, "", "credentials: load credentials"},
		{"missing file", []string{"-config", "/nonexistent.yaml"}, exitError, "", "load sshgw config:"},
		{"help", []string{"-h"}, exitOK, "", "-forward-to"},
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
