// Package promrun holds the test that runs Debian's real prometheus binary
// with the committed configuration (observability/prometheus/prometheus.yml)
// and alert rules, against a stand-in for the registry's service discovery
// that serves the registry's own golden document
// (registry/internal/server/testdata/sd.golden.json) with its targets moved
// to exporters on loopback, and checks that every target is discovered and
// up, that the rules load and evaluate, that every dashboard query
// evaluates, and that a node that leaves disappears without a reload.
//
// The prometheus binary comes with Debian's prometheus package
// (scripts/install-deps.sh). Without it the test skips, except under
// CI=true, where it fails.
package promrun
