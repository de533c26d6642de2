// Command tunnelmesh-registry is the TunnelMesh coordinator's control plane:
// `tunnelmesh-registry --config coordinator.yaml` runs it and
// `tunnelmesh-registry admin ...` manages tokens and nodes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tunnelmesh/tunnelmesh/registry/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, "tunnelmesh-registry", os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
