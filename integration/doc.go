// Package integration is TunnelMesh's black-box suite: real containers of
// the images scripts/images.sh builds (the same Dockerfiles `make images` and
// compose use), driven from outside through the `tunnelmesh` CLI, with
// github.com/testcontainers/testcontainers-go. The harness is in package
// harness; the tests are in this package's _test files.
//
//	cd integration && go test -count=1 -v ./...
//
// TestMain builds the images first (TUNNELMESH_ITEST_NO_BUILD=1 skips that),
// and every test skips with a message when Docker is not reachable.
// TUNNELMESH_ITEST_LOGS=1 prints every container's log at the end.
package integration
