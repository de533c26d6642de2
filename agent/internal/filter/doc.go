// Package filter is the agent's inbound packet filter: default deny, rules
// from the registry's compiled policy (api.Filter), and stateful connection
// tracking so that replies to the node's own connections pass.
//
// # Contract with the data plane
//
// A Filter is a device.Filter: the device parses each packet once
// (packet.Parsed) and hands that parse to the filter. It calls Inbound with
// every decrypted IP packet whose source is the sending peer's mesh IP,
// before it writes it to the TUN device, and drops the packet when Inbound
// returns false. It calls Outbound with every packet it reads from the TUN
// device for a peer, before encrypting it, so the filter learns the
// connections the node opens. Both may be called concurrently from any
// number of goroutines, neither blocks beyond a short per-shard lock, and
// neither allocates (see TestNoAllocs, the benchmarks and the device's
// TestPacketPathNoAlloc). Neither keeps or modifies the parse or its
// packet.
//
// # What passes
//
// Only packets addressed to the node's own mesh address (Config.Self,
// SetSelf) pass, whatever the rules say: a peer allowed tcp/80 on the node
// reaches port 80 of that address, not of the node's other addresses nor
// of the hosts it routes to (its LAN, when it forwards). Packets to any
// other address are dropped as DropDestination, as Nebula's firewall drops
// packets for a local address it does not own and Tailscale's filter
// drops destinations outside the node's addresses. Of those packets:
//
//   - A packet from a connection the node opened: a tracked flow created by
//     Outbound (a TCP SYN, any UDP datagram, an ICMP echo request) matched
//     in the reverse direction, until it has been idle for its protocol's
//     timeout (TCPTimeout, UDPTimeout, DefaultTimeout, as nebula's).
//   - ICMP errors (unreachable, time exceeded, parameter problem) that quote
//     a packet of a tracked flow, so path MTU discovery works, sent by the
//     peer of that flow: no other peer can tear a flow down or shrink its
//     MTU.
//   - A packet that a rule allows: its source address is in a rule's
//     Sources, and its protocol and destination port match the rule.
//   - The later fragments of an IPv4 datagram whose first fragment passed
//     (matched by source, destination, protocol and IP ID, for a few
//     seconds).
//
// Everything else is dropped and counted by reason; IPv6 and malformed
// packets never pass. Flows are keyed by both addresses, protocol and
// ports; a packet the node sends from another source address than its
// own opens no flow.
//
// # No policy
//
// Before the first SetFilter, and after SetFilter(nil) (the registry has no
// policy), no rule allows anything: only replies to the node's own
// connections pass: default deny, taken literally. The
// registry ships a default policy (ICMP and DNS) for meshes that want one.
//
// # Policy changes
//
// SetFilter swaps the rule set atomically. Flows the node opened stay. A
// flow a peer opened is checked against the current rules on every packet,
// so it keeps working if the new rules still allow it and stops at its
// next packet if they do not. Such a flow stays tracked as peer-opened, so
// the node's own replies on it never turn it into a node-opened flow.
//
// # Bounds
//
// The flow table holds at most MaxFlows entries in shards, and the flows
// with one peer address (both directions) at most MaxFlowsPerPeer of them
// (a quarter by default), so that a peer opening flows without end cannot
// push out the node's flows with the others. A flow's shard depends on its
// whole key, so each peer's flows spread evenly and the share is kept per
// shard (MaxFlowsPerPeer/64 each). A peer holding its share loses its own
// flow closest to expiry (among a few) to each new one. A shard that is
// full first drops its expired flows (at most once a second) and then
// evicts, among a few sampled flows, one of the peer holding the most
// flows in the shard, the one closest to expiry.
//
// # Handshake round trip times
//
// For the TCP connections the node opens, the connection tracker measures
// the time from the node's SYN to the peer's SYN-ACK, into histograms by
// peer and destination port with bounded cardinality: ports named by the
// policy's TCP rules or promoted after a few handshakes, others folded
// into port 0, and at most a fixed number of (peer, port) pairs
// (flowrtt.go, Stats.FlowRTT).
package filter
