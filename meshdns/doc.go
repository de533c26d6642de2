// Package meshdns is the meshdns CoreDNS plugin: it answers the names of a
// TunnelMesh mesh from the registry's netmap.
//
// The plugin acts as a mesh node (it reads the node credentials the agent
// saved, see regclient.Credentials) and long-polls the registry for its
// netmap between OnStartup and OnShutdown. Every netmap is indexed once
// into an immutable table that replaces the previous one atomically; queries
// read the current table without locking and never wait for the registry.
//
// Names (zone from the Corefile, else the netmap's DNS zone, else "mesh."):
//
//	<node>.<zone>                  A     the node's mesh address (the node itself and every peer)
//	<service>.<node>.<zone>        A     the node's mesh address, for each published service
//	_<service>._<proto>.<node>.<zone> SRV  0 0 <port> <node>.<zone>.
//	<zone>                         SOA, NS (NS: the nodes the netmap lists as DNS servers, else the node itself)
//	d.c.b.a.in-addr.arpa.          PTR   <node>.<zone>. in the reverse zones of the mesh prefix
//
// Existing names asked for another type get NODATA, unknown names NXDOMAIN
// (or the next plugin, with fallthrough); both carry the zone's SOA, whose
// minimum is the ttl. Names match case-insensitively. See README.md.
//
// Register it in a CoreDNS build by importing this package and inserting
// "meshdns" into dnsserver.Directives (cmd/tunnelmesh-meshdns does both), or
// with the line "meshdns:github.com/tunnelmesh/tunnelmesh/meshdns" in
// CoreDNS's plugin.cfg.
package meshdns
