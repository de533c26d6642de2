package config

import (
	"os"
	"strings"
	"testing"
	"time"
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
	if c.Listen != ":2222" || c.ForwardTo != "127.0.0.1:7600" || c.IdleTimeout != 60*time.Second ||
		c.Credentials != "/var/lib/tunnelmesh/credentials.json" {
		t.Errorf("Parse(example.yaml) = %+v", c)
	}
}

func TestTooLarge(t *testing.T) {
	_, err := Parse(strings.NewReader("# " + strings.Repeat("x", MaxFileSize)))
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Parse(large) = %v, want a size error", err)
	}
}

func TestErrors(t *testing.T) {
	const ok = "credentials: /c.json\nforward_to: 127.0.0.1:7600\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", ok + "shell: true", "shell: unknown key (line 3)"},
		{"unknown nested key", ok + "log:\n  level: info\n  colour: true\n", "log.colour: unknown key (line 5)"},
		{"not yaml", "listen: [", "parse sshgw config:"},
		{"no identity", "forward_to: 127.0.0.1:7600", "credentials:"},
		{"both identities", ok + "key_file: /k", "key_file:"},
		{"allow keys with credentials", ok + "allow_keys: [x]", "allow_keys:"},
		{"no forward", "credentials: /c.json", "forward_to:"},
		{"forward not loopback", "credentials: /c.json\nforward_to: 10.0.0.1:7600", "forward_to:"},
		{"bad listen", ok + "listen: x", "listen:"},
		{"bad key", "key_file: /k\nforward_to: 127.0.0.1:1\nallow_keys: [ssh-rsa AAAA]", "allow_keys[0]:"},
		{"idle", ok + "idle_timeout: 10ms", "idle_timeout:"},
		{"idle not a duration", ok + "idle_timeout: soon", "line 3: cannot unmarshal !!str `soon` into time.Duration"},
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
