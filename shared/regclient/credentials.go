package regclient

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// Credentials are what a node needs to call the registry: saved by the agent
// after join (mode 0600) and read by services that act as that node, such as
// meshdns and sshgw.
type Credentials struct {
	Coordinator string `json:"coordinator"` // https://host:port
	Pin         string `json:"pin"`         // TLS key pin, see tlspin
	Credential  string `json:"credential"`  // "<node id>.<secret>"
	KeyFile     string `json:"key_file"`    // OpenSSH ed25519 private key
	// Registries are the other registry replicas' URLs (from the netmap),
	// tried when Coordinator fails (Client.SetReplicas).
	Registries []string `json:"registries,omitempty"`

	Key nodekey.PrivateKey `json:"-"` // loaded from KeyFile by LoadCredentials
}

// LoadCredentials reads a credentials file and the key it names (a relative
// key_file is relative to the credentials file).
func LoadCredentials(path string) (Credentials, error) {
	var c Credentials
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("load credentials: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("load credentials %s: %w", path, err)
	}
	if c.Coordinator == "" || c.Credential == "" || c.KeyFile == "" {
		return c, fmt.Errorf("load credentials %s: coordinator, credential and key_file are required", path)
	}
	kf := c.KeyFile
	if !filepath.IsAbs(kf) {
		kf = filepath.Join(filepath.Dir(path), kf)
	}
	if c.Key, err = nodekey.Load(kf); err != nil {
		return c, fmt.Errorf("load credentials %s: %w", path, err)
	}
	return c, nil
}

// Save writes the credentials file with mode 0600 (atomically).
func (c Credentials) Save(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}
