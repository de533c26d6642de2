package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// DefaultReplication is SeaweedFS's replica placement in cluster mode: one
// extra copy on another server of the same rack, so 2 copies of every
// object on 2 different storage nodes.
const DefaultReplication = "001"

// MinSecretLen is the shortest cluster secret accepted (bytes of the file,
// surrounding whitespace removed).
const MinSecretLen = 32

// ClusterConfig joins several storage nodes into one SeaweedFS cluster.
// Every node of the cluster lists the same Peers and holds the same secret.
type ClusterConfig struct {
	// Peers are the cluster's storage nodes, this one included: mesh node
	// names (resolved in the netmap) or mesh IP addresses. Each runs a
	// SeaweedFS master (raft among them), a volume server, a filer and an
	// S3 gateway. Empty: single-node mode.
	Peers []string `yaml:"peers"`
	// Replication is SeaweedFS's default replica placement ("xyz": copies
	// on other data centres, racks, servers).
	Replication string `yaml:"replication"`
	// SecretFile holds the cluster secret (mode 0600, at least MinSecretLen
	// bytes) from which every node derives the same per-node S3 keys.
	SecretFile string `yaml:"secret_file"`
	// CreateSecret makes the first node to start write a random secret to
	// SecretFile when it does not exist, for nodes sharing that file (the
	// compose demo's volume). Off, a missing file is an error.
	CreateSecret bool `yaml:"create_secret"`
	// Epoch is mixed into every derived key: raising it on every node
	// replaces all the cluster's keys at once.
	Epoch uint64 `yaml:"epoch"`
}

// Enabled reports whether cluster mode is configured.
func (c ClusterConfig) Enabled() bool { return len(c.Peers) > 0 }

// Copies returns the number of copies the replication setting asks for.
func (c ClusterConfig) Copies() int {
	n := 1
	for _, d := range c.Replication {
		n += int(d - '0')
	}
	return n
}

func (c *ClusterConfig) applyDefaults() {
	if !c.Enabled() {
		return
	}
	if c.Replication == "" {
		c.Replication = DefaultReplication
	}
	if c.Epoch == 0 {
		c.Epoch = 1
	}
}

func (c *ClusterConfig) validate() error {
	if !c.Enabled() {
		if c.Replication != "" || c.SecretFile != "" || c.Epoch != 0 || c.CreateSecret {
			return fmt.Errorf("cluster.peers: empty, but other cluster keys are set (list every storage node of the cluster, this one included)")
		}
		return nil
	}
	if len(c.Peers) < 3 || len(c.Peers)%2 == 0 {
		return fmt.Errorf("cluster.peers: %d peers: want an odd number, at least 3 (the masters' raft needs a majority to survive the loss of one)", len(c.Peers))
	}
	seen := map[string]bool{}
	for i, p := range c.Peers {
		if err := ValidatePeer(p); err != nil {
			return fmt.Errorf("cluster.peers[%d]: %w", i, err)
		}
		k := strings.ToLower(p)
		if seen[k] {
			return fmt.Errorf("cluster.peers[%d]: %q listed twice", i, p)
		}
		seen[k] = true
	}
	if len(c.Replication) != 3 || strings.Trim(c.Replication, "0123456789") != "" {
		return fmt.Errorf("cluster.replication: %q: want SeaweedFS's three digits xyz (copies on other data centres, racks, servers), e.g. \"001\"", c.Replication)
	}
	if c.Replication[0] != '0' || c.Replication[1] != '0' {
		return fmt.Errorf("cluster.replication: %q: the cluster's servers are in one data centre and rack: only the last digit may be set", c.Replication)
	}
	if c.Copies() > len(c.Peers) {
		return fmt.Errorf("cluster.replication: %q: %d copies, more than the %d peers", c.Replication, c.Copies(), len(c.Peers))
	}
	if c.SecretFile == "" {
		return fmt.Errorf("cluster.secret_file: empty: the cluster needs a secret shared by its nodes (e.g. head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE)")
	}
	return nil
}

// ValidatePeer checks one cluster peer: a mesh IP address or a node name
// (letters, digits, '-' and '.'; no port: every node uses SeaweedFS's
// default ports).
func ValidatePeer(p string) error {
	if a, err := netip.ParseAddr(p); err == nil {
		if a.IsUnspecified() || a.IsLoopback() {
			return fmt.Errorf("%q: want a mesh address", p)
		}
		return nil
	}
	if p == "" || len(p) > 253 {
		return fmt.Errorf("%q: want a node name or a mesh IP address", p)
	}
	for i := 0; i < len(p); i++ {
		ch := p[i]
		ok := (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'
		if !ok {
			return fmt.Errorf("%q: want a node name or a mesh IP address (no port: SeaweedFS's default ports are used)", p)
		}
	}
	return nil
}
