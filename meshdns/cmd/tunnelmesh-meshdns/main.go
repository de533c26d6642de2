// Command tunnelmesh-meshdns is CoreDNS with the meshdns plugin compiled in,
// placed just before forward in the plugin order, and the standard plugins
// a mesh DNS server needs. Flags and Corefile are CoreDNS's own
// (-conf Corefile, -dns.port, -version, ...).
package main

import (
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

func init() { meshdns.InsertDirective() }

func main() { coremain.Run() }
