package config

import (
	"strings"
	"testing"
)

func TestClusterDefaultsOff(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.Enabled() || c.Cluster.Replication != "" || c.Cluster.Epoch != 0 {
		t.Errorf("Parse(empty).Cluster = %+v, want single-node mode", c.Cluster)
	}
}

func TestClusterParses(t *testing.T) {
	in := "cluster:\n  peers: [store1, store2, 100.64.0.9]\n  secret_file: /etc/tunnelmesh/cluster.secret\n"
	c, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse(%q) = %v", in, err)
	}
	if !c.Cluster.Enabled() || len(c.Cluster.Peers) != 3 || c.Cluster.Replication != DefaultReplication || c.Cluster.Epoch != 1 || c.Cluster.Copies() != 2 {
		t.Errorf("Parse(%q).Cluster = %+v", in, c.Cluster)
	}
}

func TestClusterErrors(t *testing.T) {
	const ok = "  secret_file: /s\n"
	tests := []struct {
		name, in, want string
	}{
		{"unknown key", "cluster:\n  peer: [a, b, c]\n", "line 2: cluster.peer: unknown key"},
		{"not a mapping", "cluster: [a]\n", "cluster: want a mapping"},
		{"peers not a list", "cluster:\n  peers: 3\n", "cluster.peers:"},
		{"two peers", "cluster:\n  peers: [a, b]\n" + ok, "cluster.peers: 2 peers: want an odd number, at least 3"},
		{"four peers", "cluster:\n  peers: [a, b, c, d]\n" + ok, "cluster.peers: 4 peers"},
		{"duplicate", "cluster:\n  peers: [a, b, A]\n" + ok, `cluster.peers[2]: "A" listed twice`},
		{"port", "cluster:\n  peers: [a, b, 'c:9333']\n" + ok, `cluster.peers[2]: "c:9333": want a node name or a mesh IP address`},
		{"loopback", "cluster:\n  peers: [a, b, 127.0.0.1]\n" + ok, `cluster.peers[2]: "127.0.0.1": want a mesh address`},
		{"no secret", "cluster:\n  peers: [a, b, c]\n", "cluster.secret_file: empty"},
		{"bad replication", "cluster:\n  peers: [a, b, c]\n  replication: \"1\"\n" + ok, `cluster.replication: "1": want`},
		{"rack replication", "cluster:\n  peers: [a, b, c]\n  replication: \"010\"\n" + ok, `cluster.replication: "010": the cluster's servers are in one data centre`},
		{"too many copies", "cluster:\n  peers: [a, b, c]\n  replication: \"003\"\n" + ok, `cluster.replication: "003": 4 copies, more than the 3 peers`},
		{"keys without peers", "cluster:\n  secret_file: /s\n", "cluster.peers: empty, but other cluster keys are set"},
		{"epoch negative", "cluster:\n  peers: [a, b, c]\n  epoch: -1\n" + ok, "cluster.epoch:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

// TestExampleClusterParses: the example's commented cluster section, once
// uncommented, is a valid configuration.
func TestExampleClusterParses(t *testing.T) {
	var lines []string
	in := false
	for _, line := range strings.Split(string(Example), "\n") {
		if line == "# cluster:" {
			in = true
		}
		if in && strings.HasPrefix(line, "# ") {
			line = strings.TrimPrefix(line, "# ")
		}
		lines = append(lines, line)
	}
	if !in {
		t.Fatalf("example has no commented cluster section")
	}
	c, err := Parse([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("Parse(example with cluster) = %v", err)
	}
	if !c.Cluster.Enabled() || len(c.Cluster.Peers) != 3 || c.Cluster.SecretFile != "/etc/tunnelmesh/storage-cluster.secret" || c.Cluster.Epoch != 1 {
		t.Errorf("Parse(example with cluster).Cluster = %+v", c.Cluster)
	}
}

func TestComposeClusterConfigParses(t *testing.T) {
	c, err := Load("../../../compose/config/storage-cluster.yaml")
	if err != nil {
		t.Fatalf("compose/config/storage-cluster.yaml: %v", err)
	}
	if !c.Cluster.Enabled() || len(c.Cluster.Peers) != 3 || !c.Cluster.CreateSecret || c.Cluster.Replication != "001" {
		t.Errorf("compose cluster config = %+v", c.Cluster)
	}
}
