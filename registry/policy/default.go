package policy

import _ "embed"

// DefaultYAML is the built-in default policy: ICMP between all nodes, port
// 53 (udp and tcp) to nodes tagged "dns", tcp 9000 and 9001 (S3 and its
// credentials API) to nodes tagged "storage", tcp 2049 and tcp/udp 111 to
// nodes tagged "nfs", tcp 9101, 9153, 9108, 9103 and 9104 (the metrics of
// agents, meshdns, nfsd, dockerwatch and storage) from nodes tagged
// "monitoring", nothing else. A registry whose policy store
// holds no version (no policy_file, nothing applied) enforces it as policy
// version 0.
//
//go:embed default.yaml
var DefaultYAML []byte
