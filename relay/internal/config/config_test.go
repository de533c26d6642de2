package config

import (
	"os"
	"strings"
	"testing"
)

func TestExampleParses(t *testing.T) {
	f, err := os.Open("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse(example.yaml) = %v", err)
	}
	if c.ID != "relay-eu-1" || c.Metrics != "127.0.0.1:9090" || len(c.AllowKeys) != 1 {
		t.Errorf("Parse(example.yaml) = %+v", c)
	}
	keys, err := c.Keys()
	if err != nil || len(keys) != 1 {
		t.Errorf("Keys() = %v, %v", keys, err)
	}
}

func TestEmptyIsDefault(t *testing.T) {
	c, err := Parse(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":443" || c.Path != "/relay" || c.QueueLen != 256 {
		t.Errorf("Parse(\"\") = %+v, want defaults", c)
	}
}

func TestTooLarge(t *testing.T) {
	_, err := Parse(strings.NewReader("# " + strings.Repeat("x", MaxFileSize)))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Parse(large) = %v, want a size error", err)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "listn: :443", "listn: unknown key (line 1)"},
		{"unknown nested key", "listen: \":443\"\ntls:\n  state_dir: /s\n  hostz: [a]\n", "tls.hostz: unknown key (line 4)"},
		{"unknown key in log", "log: {level: info, colour: true}", "log.colour: unknown key (line 1)"},
		{"map in a list of strings", "allow_keys: [{key: x}]", "line 1: cannot unmarshal !!map into string"},
		{"not yaml", "listen: [", "parse relay config:"},
		{"bad listen", "listen: nowhere", "listen:"},
		{"bad path", "path: relay", "path:"},
		{"half tls", "tls: {cert: /c.pem}", "tls:"},
		{"bad key", "allow_keys: [ssh-rsa AAAA]", "allow_keys[0]:"},
		{"queue", "queue_len: 0", "queue_len:"},
		{"socket buffer", "socket_buffer: 10", "socket_buffer:"},
		{"metrics", "metrics: 9090", "metrics:"},
		{"relay id", "id: \"" + strings.Repeat("x", 300) + "\"", "id:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want error containing %q", tt.yaml, err, tt.want)
			}
		})
	}
}
