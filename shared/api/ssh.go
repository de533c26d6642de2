package api

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/tunnelmesh/tunnelmesh/shared/nodekey"
)

// MaxSSHUserLen is the longest SSHUser (the Linux login name limit).
const MaxSSHUserLen = 32

// ValidateSSHUser checks an OpenSSH login name: 1 to 32 characters, letters,
// digits, '_', '.' and '-', not starting with '-' or '.'.
func ValidateSSHUser(s string) error {
	if s == "" {
		return errors.New("ssh user is empty")
	}
	if len(s) > MaxSSHUserLen {
		return fmt.Errorf("ssh user %.20q...: longer than %d characters", s, MaxSSHUserLen)
	}
	if s[0] == '-' || s[0] == '.' {
		return fmt.Errorf("ssh user %q: must not start with %q", s, s[0])
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '.' && c != '-' {
			return fmt.Errorf("ssh user %q: only letters, digits, '_', '.' and '-' are allowed", s)
		}
	}
	return nil
}

// ValidateSSH checks that a node's SSH fields fit together. With no host key
// the endpoint (if any) is a TunnelMesh SSH server whose host key is the node
// key, and user and packet port must be empty. With a host key (an OpenSSH
// server) the endpoint, the user and the packet port are all required. The
// endpoint's address itself is the registry's to check.
func ValidateSSH(ep netip.AddrPort, hostKey *nodekey.PublicKey, user string, packetPort uint16) error {
	if hostKey == nil {
		if user != "" || packetPort != 0 {
			return errors.New("ssh_user and ssh_packet_port need ssh_host_key (an OpenSSH endpoint)")
		}
		return nil
	}
	if err := hostKey.Validate(); err != nil {
		return fmt.Errorf("ssh_host_key: %w", err)
	}
	if !ep.IsValid() {
		return errors.New("ssh_host_key needs ssh_endpoint")
	}
	if err := ValidateSSHUser(user); err != nil {
		return fmt.Errorf("ssh_user: %w", err)
	}
	if packetPort == 0 {
		return errors.New("ssh_packet_port is required with ssh_host_key")
	}
	return nil
}
