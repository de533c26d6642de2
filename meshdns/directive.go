package meshdns

import (
	"slices"

	"github.com/coredns/coredns/core/dnsserver"
)

// InsertDirective puts "meshdns" into CoreDNS's plugin order just before
// "forward" (at the end when forward is not compiled in), so that a server
// block's meshdns answers before forward and after cache. It does nothing
// when meshdns is already in the order. Call it from main's init in a build
// that imports this package; builds from CoreDNS's plugin.cfg do not need it.
func InsertDirective() {
	if slices.Contains(dnsserver.Directives, Name) {
		return
	}
	i := slices.Index(dnsserver.Directives, "forward")
	if i < 0 {
		i = len(dnsserver.Directives)
	}
	dnsserver.Directives = slices.Insert(dnsserver.Directives, i, Name)
}
