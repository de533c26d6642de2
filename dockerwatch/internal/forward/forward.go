package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
)

// Table is the nftables table dockerwatch owns (family ip).
const Table = "tunnelmesh_dockerwatch"

// Render returns the nft -f script that replaces Table with the forward of
// svcs to the node's mesh address mesh. With no services the script only
// deletes the table.
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

// NFT applies rulesets with the nft command.
type NFT struct {
	// Cmd is the command and its leading arguments; default ["nft"].
	Cmd []string
}

// Apply replaces Table with the forward of svcs to mesh, atomically.
func (n NFT) Apply(ctx context.Context, mesh netip.Addr, svcs []desired.Service) error {
	if len(svcs) > 0 && !mesh.Is4() {
		return fmt.Errorf("apply forward: node mesh address %v is not IPv4", mesh)
	}
	if err := n.run(ctx, Render(mesh, svcs)); err != nil {
		return fmt.Errorf("apply forward: %w", err)
	}
	return nil
}

// Withdraw deletes Table.
func (n NFT) Withdraw(ctx context.Context) error {
	if err := n.run(ctx, Render(netip.Addr{}, nil)); err != nil {
		return fmt.Errorf("withdraw forward: %w", err)
	}
	return nil
}

// Rules returns the table as nft lists it, "" when it does not exist.
func (n NFT) Rules(ctx context.Context) (string, error) {
	cmd := n.command(ctx, "list", "table", "ip", Table)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "No such file or directory") {
			return "", nil
		}
		return "", fmt.Errorf("list forward: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (n NFT) command(ctx context.Context, args ...string) *exec.Cmd {
	c := n.Cmd
	if len(c) == 0 {
		c = []string{"nft"}
	}
	return exec.CommandContext(ctx, c[0], append(c[1:len(c):len(c)], args...)...)
}

func (n NFT) run(ctx context.Context, script string) error {
	cmd := n.command(ctx, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
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
