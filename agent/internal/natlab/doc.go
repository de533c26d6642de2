// Package natlab holds the NAT lab: root-only tests that build an
// "internet" of network namespaces (a bridge with the coordinator on it,
// nodes directly on it or behind NAT routers with real iptables
// MASQUERADE, endpoint-independent or --random-fully) and check that two
// nodes reach each other on the path the topology allows: direct UDP with
// hole punching, the SSH transport, or the coordinator's WebSocket relay.
// Each case asserts ping and an intact TCP transfer through the tunnel, the
// path both nodes report, and logs how long each took. The benchmark
// (BenchmarkPaths) measures throughput and RTT on each path between the
// same two namespaces.
//
//	sudo go test ./internal/natlab/ -v          # the eight cases, about 2 minutes
//	sudo go test ./internal/natlab/ -run XXX -bench Paths -benchtime 1x
package natlab
