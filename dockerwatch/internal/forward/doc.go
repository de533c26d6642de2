// Package forward installs the kernel forward of the exposed services in the
// namespace dockerwatch shares with the node's agent: an nftables table of
// its own, table ip tunnelmesh_dockerwatch, rewritten whole and atomically
// (one nft -f transaction that deletes and recreates it) on every apply, so
// that it holds exactly the desired set, whatever was there before, and
// nothing is ever half applied.
//
// For each service the table DNATs packets to the node's mesh address on
// the service's port and protocol to the container's address, in prerouting
// (traffic from the mesh, arriving on the TUN device) and in output (the
// node's own connections to its mesh address). Connections so forwarded are
// masqueraded to the namespace's own address on the container's network,
// so that the container's replies come back through the namespace (the
// container's default route goes to the Docker host, which does not know
// the mesh range) and conntrack reverses both translations.
//
// Kernel DNAT rather than a userspace proxy: the packets are forwarded by
// the kernel without a copy to user space or a goroutine per connection,
// UDP needs no session table of ours, and the forward costs nothing
// measurable next to the tunnel itself (see README: Forward).
//
// The namespace must forward IPv4 (net.ipv4.ip_forward=1); EnsureIPForward
// turns it on or says why it cannot.
package forward
