//go:build linux

package forward

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/desired"
)

// NFT applies rulesets with the nft command: the tests list the table
// with it and install Render's script to compare with Kernel.
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
