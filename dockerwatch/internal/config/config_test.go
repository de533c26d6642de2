package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleParses(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "dockerwatch.example.yaml"))
	if err != nil {
		t.Fatalf("Load(example) = %v", err)
	}
	if !c.AutoPublish || c.Metrics != "mesh:9103" || c.ResyncInterval != time.Minute {
		t.Errorf("Load(example) = %+v, want auto_publish, metrics mesh:9103, resync 1m", c)
	}
}

func TestEmptyIsDefault(t *testing.T) {
	c, err := Parse(strings.NewReader(""))
	if err != nil {
		t.Fatalf("Parse(\"\") = %v", err)
	}
	if c != Default() {
		t.Errorf("Parse(\"\") = %+v, want %+v", c, Default())
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"unknown top key", "auto_publsh: true\n", "line 1: auto_publsh: unknown key"},
		{"unknown nested key", "docker:\n  host: unix:///x\n  hots: y\n", "line 3: docker.hots: unknown key"},
		{"unknown section", "forward:\n  nft: nft\n", "line 1: forward: unknown key"},
		{"bad host", "docker:\n  host: /var/run/docker.sock\n", "docker.host:"},
		{"empty socket", "agent:\n  socket: \"\"\n", "agent.socket: required"},
		{"bad resync", "resync_interval: 10ms\n", "resync_interval:"},
		{"bad metrics", "metrics: 9102\n", "metrics:"},
		{"bad mesh port", "metrics: mesh:0\n", `metrics: "mesh:0": want mesh:PORT`},
		{"bad mesh port text", "metrics: mesh:x\n", `metrics: "mesh:x": want mesh:PORT`},
		{"bad level", "log:\n  level: loud\n", "log.level:"},
		{"bad type", "auto_publish: sometimes\n", "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v, want error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dw.yaml")
	if err := os.WriteFile(p, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "bogus: unknown key") {
		t.Errorf("Load = %v, want the path and the key", err)
	}
}

func TestMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		in       string
		addr     string
		meshPort uint16
	}{
		{"", "", 0},
		{"off", "", 0},
		{"mesh:9103", "", 9103},
		{"127.0.0.1:9103", "127.0.0.1:9103", 0},
	} {
		c := Default()
		c.Metrics = tc.in
		addr, port, err := c.MetricsListen()
		if err != nil || addr != tc.addr || port != tc.meshPort {
			t.Errorf("MetricsListen(%q) = %q, %d, %v; want %q, %d", tc.in, addr, port, err, tc.addr, tc.meshPort)
		}
	}
	if c := Default(); c.Metrics != "mesh:9103" {
		t.Errorf("default metrics = %q, want mesh:9103", c.Metrics)
	}
}
