package client

import (
	"github.com/tunnelmesh/tunnelmesh/testkit/testenv"
	"os/exec"
	"strings"
	"testing"
)

// The relay and its client only move ciphertext: nothing in the relay module
// may pull in TUN code.
func TestNoTUNDependency(t *testing.T) {
	goBin := testenv.NeedCommand(t, "go", "the Go toolchain")
	cmd := exec.Command(goBin, "list", "-deps", "-test", "./...")
	cmd.Dir = ".." // the relay module root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 10 {
		t.Fatalf("go list -deps listed only %d packages: %q", len(pkgs), out)
	}
	found := false
	for _, p := range pkgs {
		if p == "github.com/tunnelmesh/tunnelmesh/relay/client" {
			found = true
		}
		if p == "golang.zx2c4.com/wireguard/tun" || strings.HasPrefix(p, "golang.zx2c4.com/wireguard/tun/") {
			t.Errorf("relay module depends on %s", p)
		}
	}
	if !found {
		t.Error("go list -deps did not list relay/client; the check is not looking at the right module")
	}
}
