package forward

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
)

// Table is the nftables table dockerwatch owns (family ip).
const Table = "tunnelmesh_dockerwatch"

// Render returns, as an nft -f script, what Kernel.Apply installs for svcs
// and mesh (a test checks that both yield the same table): the script that
// replaces Table with the forward. With no services it only deletes the
// table.
func Render(mesh netip.Addr, svcs []desired.Service) string {
	var b strings.Builder
	// "table" creates the table if it is missing, so that "delete" never
	// fails; both run in the same transaction as the new definition.
	fmt.Fprintf(&b, "table ip %s\ndelete table ip %s\n", Table, Table)
	if len(svcs) == 0 || !mesh.Is4() {
		return b.String()
	}
	var rules strings.Builder
	for _, s := range svcs {
		fmt.Fprintf(&rules, "\t\tip daddr %s %s dport %d dnat to %s\n", mesh, s.Proto, s.Port, s.Target)
	}
	fmt.Fprintf(&b, "table ip %s {\n", Table)
	fmt.Fprintf(&b, "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n%s\t}\n", rules.String())
	fmt.Fprintf(&b, "\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n%s\t}\n", rules.String())
	fmt.Fprintf(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	fmt.Fprintf(&b, "\t\tct status dnat ct original ip daddr %s masquerade\n\t}\n}\n", mesh)
	return b.String()
}

// IPForwardPath is the namespace's IPv4 forwarding switch.
const IPForwardPath = "/proc/sys/net/ipv4/ip_forward"

// EnsureIPForward turns IPv4 forwarding on in the current namespace, or
// says why it cannot.
func EnsureIPForward() error {
	b, err := os.ReadFile(IPForwardPath)
	if err != nil {
		return fmt.Errorf("ip forwarding: %w", err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(IPForwardPath, []byte("1\n"), 0o644); err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "read-only") {
			return fmt.Errorf("ip forwarding is off in this namespace and cannot be turned on (%v): set the sysctl net.ipv4.ip_forward=1 on the agent's container", err)
		}
		return fmt.Errorf("ip forwarding: %w", err)
	}
	return nil
}
