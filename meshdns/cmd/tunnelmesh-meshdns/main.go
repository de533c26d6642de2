// Command tunnelmesh-meshdns is CoreDNS with the meshdns plugin compiled in,
// placed just before forward in the plugin order, and the standard plugins
// a mesh DNS server needs. Flags and Corefile are CoreDNS's own
// (-conf Corefile, -dns.port, ...), except that -version (or --version)
// prints the TunnelMesh version and the CoreDNS version it is built on.
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"

	"github.com/tunnelmesh/tunnelmesh/meshdns"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func init() { meshdns.InsertDirective() }

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Printf("tunnelmesh-meshdns %s (CoreDNS-%s)\n", version, coremain.CoreVersion)
		return
	}
	coremain.GitCommit = version // shown in CoreDNS's startup log line
	coremain.Run()
}
