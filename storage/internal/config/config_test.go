package config

import (
	"strings"
	"testing"
	"time"
)

func TestExampleParses(t *testing.T) {
	c, err := Parse(Example)
	if err != nil {
		t.Fatalf("Parse(example) = %v", err)
	}
	if c.S3Port != 9000 || c.AuthPort != 9001 || c.MetricsPort != 9104 || c.Listen != "mesh" || c.Weed.MetricsListen != "127.0.0.1:9327" {
		t.Errorf("Parse(example) = %+v", c)
	}
}

func TestDefaults(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "weed:\n"} {
		c, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%q) = %v", in, err)
		}
		if c.S3Port != DefaultS3Port || c.MetricsPort != DefaultMetricsPort || c.DataDir != DefaultDataDir || len(c.Buckets) != 1 || c.Buckets[0] != "mesh" ||
			c.Weed.VolumeMax != DefaultVolumeMax || time.Duration(c.Weed.MaxBackoff) != DefaultMaxBackoff {
			t.Errorf("Parse(%q) = %+v, want defaults", in, c)
		}
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"s3port: 1\n", "line 1: s3port: unknown key"},
		{"weed:\n  volume_mx: 3\n", "line 2: weed.volume_mx: unknown key"},
		{"weed:\n  volume_max: lots\n", "weed.volume_max:"},
		{"weed:\n  max_backoff: soon\n", "weed.max_backoff:"},
		{"weed: 3\n", "weed: want a mapping"},
		{"listen: 0.0.0.0\n", "listen: \"0.0.0.0\""},
		{"listen: eth0\n", "listen: \"eth0\""},
		{"auth_port: 9000\n", "auth_port: 9000"},
		{"s3_port: 60000\n", "s3_port: 60000"},
		{"metrics_port: 9001\n", "metrics_port: 9001: already used"},
		{"s3_port: 9200\nmetrics_port: 9200\n", "metrics_port: 9200: already used"},
		{"metrics_port: 19000\n", "metrics_port: 19000: already used"},
		{"metrics_port: 70000\n", "metrics_port:"},
		{"buckets: [mesh, Bad_Name]\n", "buckets[1]: bucket \"Bad_Name\""},
		{"weed:\n  metrics_listen: :9327\n", "weed.metrics_listen"},
		{"weed:\n  metrics_listen: 192.0.2.7:9327\n", `weed.metrics_listen: "192.0.2.7:9327": want a loopback IP:PORT`},
		{"weed:\n  metrics_listen: 100.64.0.1:9327\n", `weed.metrics_listen: "100.64.0.1:9327": want a loopback IP:PORT`},
		{"weed:\n  max_backoff: 10ms\n", "weed.max_backoff: 10ms"},
		{"a: 1\n---\nb: 2\n", "more than one YAML document"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

func TestComposeConfigParses(t *testing.T) {
	c, err := Load("../../../compose/config/storage.yaml")
	if err != nil {
		t.Fatalf("compose/config/storage.yaml: %v", err)
	}
	if c.Listen != "mesh" || c.Weed.Binary != "/usr/local/bin/weed" {
		t.Errorf("compose config = %+v", c)
	}
}
