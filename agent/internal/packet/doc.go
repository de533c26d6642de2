// Package packet parses IP packets for the data plane, once per packet, into
// a Parsed that the device (allowed IPs, peer lookup, ping replies, TUN GRO
// flows), the filter (rules and connection tracking) and package icmp (path
// MTU answers) all read, as tailscale's net/packet.Parsed and nebula's
// newPacket do. It also holds the one Internet checksum (RFC 1071) of the
// agent.
//
// # What Parse reads
//
// IPv4: version, header length, total length (the packet is cut to it:
// decrypted plaintexts carry padding), identification, the don't-fragment
// bit and the fragment offset, protocol, source and destination. Then,
// unless the packet is a later fragment (no transport header), the
// transport header: TCP ports and flags (14 bytes needed, so a first
// fragment too short to hold the flags is TransportShort: the "tiny
// fragment" attack of RFC 1858), UDP ports (8 bytes), ICMP type, code,
// echo identifier and sequence (8 bytes), and of an ICMP error the flow of
// the packet it quotes (Quoted).
//
// IPv6: the fixed header (payload length, next header, source and
// destination; an IPv4-mapped source stays IPv6), and a TCP, UDP or
// ICMPv6 header that directly follows it. Extension headers are not
// walked: behind one, the packet has no transport fields.
//
// Parse never panics, never reads past its input and does not allocate;
// Buf aliases the input.
package packet
