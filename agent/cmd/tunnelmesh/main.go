// Command tunnelmesh is the TunnelMesh node and CLI: `tunnelmesh join`,
// `up`, `status`, `ping`, `coordinator`, `admin`, `version`. See
// agent/README.md.
package main

import (
	"os"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr}))
}
