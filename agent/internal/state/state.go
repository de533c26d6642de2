// Package state holds a node's state directory (default /var/lib/tunnelmesh,
// mode 0700):
//
//	node.key          the node's ed25519 key (OpenSSH format, 0600), unless
//	                  the node was joined with --key, which names another file
//	node.json         the join result and the settings it ran with (0600):
//	                  what `tunnelmesh up` needs to come back without a token
//	credentials.json  regclient.Credentials (0600), so services that act as
//	                  the node (meshdns, sshgw) can call the registry
//	tunnelmesh.sock   the local API socket of the running node (0600)
//	lock              held (flock) by the running node, so two nodes never
//	                  share one directory
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
	"github.com/tunnelmesh/tunnelmesh/shared/meshnet"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeapi"
	"github.com/tunnelmesh/tunnelmesh/shared/nodeauth"
	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
	"github.com/tunnelmesh/tunnelmesh/shared/regclient"
)

// DefaultDir is the state directory used when none is given.
const DefaultDir = "/var/lib/tunnelmesh"

// File names inside the state directory.
const (
	KeyFile         = "node.key"
	NodeFile        = "node.json"
	CredentialsFile = "credentials.json"
	SocketFile      = nodeapi.SocketFile
	LockFile        = "lock"
)

// ErrNotJoined is returned by LoadNode when the directory holds no join.
var ErrNotJoined = errors.New("not joined: run `tunnelmesh join --coordinator URL --token TOKEN` first")

// ErrLocked is returned by Lock when another process holds the directory.
var ErrLocked = errors.New("state directory is in use by another running node")

// Node is what a node remembers of its join. Credential and PSK are secrets.
type Node struct {
	Coordinator string       `json:"coordinator"`
	Pin         string       `json:"pin"`
	NodeID      string       `json:"node_id"`
	Name        string       `json:"name"`
	IP          netip.Addr   `json:"ip"`
	MeshID      string       `json:"mesh_id"`
	MeshCIDR    netip.Prefix `json:"mesh_cidr"`
	PSK         []byte       `json:"psk"`
	Credential  string       `json:"credential"`
	// KeyFile is the node key's path (absolute, or relative to the state
	// directory).
	KeyFile string `json:"key_file"`
	// Registries are the registry replicas' URLs the last netmap listed
	// (api.Netmap.Registries): the node turns to them when Coordinator
	// fails, also right after a restart.
	Registries []string `json:"registries,omitempty"`

	// Settings the node was joined with, reused by `tunnelmesh up`.
	Interface  string `json:"interface,omitempty"`
	ListenPort uint16 `json:"listen_port,omitempty"`
	MTU        int    `json:"mtu,omitempty"` // 0: chosen from the underlay

	JoinedAt time.Time `json:"joined_at"`
}

// FromJoin builds the Node record for a join response.
func FromJoin(coordinator, pin, keyFile string, r *api.JoinResponse) Node {
	return Node{
		Coordinator: coordinator,
		Pin:         pin,
		NodeID:      r.NodeID,
		Name:        r.Name,
		IP:          r.IP,
		MeshID:      r.MeshID,
		MeshCIDR:    r.MeshCIDR,
		PSK:         r.PSK,
		Credential:  r.Credential,
		KeyFile:     keyFile,
	}
}

// Validate checks a loaded record, naming the bad field.
func (n Node) Validate() error {
	switch {
	case n.Coordinator == "":
		return errors.New("coordinator: missing")
	case n.NodeID == "":
		return errors.New("node_id: missing")
	case n.Name == "":
		return errors.New("name: missing")
	case n.KeyFile == "":
		return errors.New("key_file: missing")
	case len(n.PSK) != api.PSKSize:
		return fmt.Errorf("psk: %d bytes, want %d", len(n.PSK), api.PSKSize)
	}
	if err := meshnet.Validate(n.MeshCIDR); err != nil {
		return fmt.Errorf("mesh_cidr: %w", err)
	}
	if !n.MeshCIDR.Contains(n.IP) {
		return fmt.Errorf("ip: %s not in mesh_cidr %s", n.IP, n.MeshCIDR)
	}
	if _, err := nodeauth.ParseCredential(n.Credential); err != nil {
		return fmt.Errorf("credential: %w", err)
	}
	for i, r := range n.Registries {
		if u, err := url.Parse(r); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("registries[%d]: %q: want https://HOST:PORT", i, r)
		}
	}
	return nil
}

// Credentials returns the registry credentials for n.
func (n Node) Credentials() regclient.Credentials {
	return regclient.Credentials{Coordinator: n.Coordinator, Pin: n.Pin, Credential: n.Credential, KeyFile: n.KeyFile,
		Registries: slices.Clone(n.Registries)}
}

// PSKArray returns the PSK as a fixed array (Validate checks its length).
func (n Node) PSKArray() [32]byte {
	var k [32]byte
	copy(k[:], n.PSK)
	return k
}

// Dir is a state directory.
type Dir string

// Path returns the path of a file in the directory.
func (d Dir) Path(name string) string { return filepath.Join(string(d), name) }

// Ensure creates the directory with mode 0700, or tightens an existing one
// to 0700.
func (d Dir) Ensure() error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if err := os.Chmod(string(d), 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	return nil
}

// Lock takes the directory's lock for a running node; release frees it.
// The lock dies with the process, so a crash never leaves it stuck.
func (d Dir) Lock() (release func(), err error) {
	if err := d.Ensure(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(d.Path(LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock state dir %s: %w", d, ErrLocked)
		}
		return nil, fmt.Errorf("lock state dir: %w", err)
	}
	return func() { f.Close() }, nil
}

// LoadKey returns the node key and the path it lives at: keyPath when given
// (an existing key, such as ~/.ssh/id_ed25519; it must exist), otherwise the
// directory's node.key, generated on first use.
func (d Dir) LoadKey(keyPath string) (nodekey.PrivateKey, string, error) {
	if keyPath != "" {
		abs, err := filepath.Abs(keyPath)
		if err != nil {
			return nodekey.PrivateKey{}, "", fmt.Errorf("node key: %w", err)
		}
		k, err := nodekey.Load(abs)
		if err != nil {
			return nodekey.PrivateKey{}, "", err
		}
		return k, abs, nil
	}
	if err := d.Ensure(); err != nil {
		return nodekey.PrivateKey{}, "", err
	}
	k, _, err := nodekey.LoadOrGenerate(d.Path(KeyFile))
	if err != nil {
		return nodekey.PrivateKey{}, "", err
	}
	return k, d.Path(KeyFile), nil
}

// KeyPath resolves n.KeyFile against the directory.
func (d Dir) KeyPath(n Node) string {
	if filepath.IsAbs(n.KeyFile) {
		return n.KeyFile
	}
	return d.Path(n.KeyFile)
}

// SaveNode writes node.json and credentials.json, both 0600, atomically.
func (d Dir) SaveNode(n Node) error {
	if err := n.Validate(); err != nil {
		return fmt.Errorf("save node state: %w", err)
	}
	if err := d.Ensure(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return fmt.Errorf("save node state: %w", err)
	}
	if err := writeFileAtomic(d.Path(NodeFile), append(b, '\n')); err != nil {
		return fmt.Errorf("save node state: %w", err)
	}
	c := n.Credentials()
	c.KeyFile = d.KeyPath(n)
	if err := c.Save(d.Path(CredentialsFile)); err != nil {
		return err
	}
	return nil
}

// LoadNode reads node.json; ErrNotJoined when there is none.
func (d Dir) LoadNode() (Node, error) {
	var n Node
	b, err := os.ReadFile(d.Path(NodeFile))
	if errors.Is(err, os.ErrNotExist) {
		return n, fmt.Errorf("state dir %s: %w", d, ErrNotJoined)
	}
	if err != nil {
		return n, fmt.Errorf("load node state: %w", err)
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return n, fmt.Errorf("load node state %s: %w", d.Path(NodeFile), err)
	}
	if err := n.Validate(); err != nil {
		return n, fmt.Errorf("load node state %s: %w", d.Path(NodeFile), err)
	}
	return n, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
