// Command tunnelmesh-registry is the TunnelMesh coordinator's control plane:
// `tunnelmesh-registry --config coordinator.yaml` runs it and
// `tunnelmesh-registry admin ...` manages tokens and nodes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tunnelmesh/tunnelmesh/registry/cli"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("tunnelmesh-registry", version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, "tunnelmesh-registry", os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
