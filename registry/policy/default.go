package policy

import _ "embed"

// DefaultYAML is the policy the example coordinator config ships: ICMP
// between all nodes, port 53 (udp and tcp) to nodes tagged "dns", tcp
// 2049 and tcp/udp 111 to nodes tagged "nfs", nothing else. It is data, not an implicit fallback: a registry with no
// policy configured sends no filter, and agents then accept nothing new.
//
//go:embed default.yaml
var DefaultYAML []byte
