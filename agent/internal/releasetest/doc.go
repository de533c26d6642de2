// Package releasetest holds the test of the release tarball (root only):
// it builds dist/tunnelmesh-linux-amd64.tar.gz with scripts/release.sh,
// extracts it into a clean directory and runs the README's getting-started
// commands exactly as a user types them, from the extracted files, on three
// "machines" (network namespaces with their own host name, /var/lib and
// /etc/resolv.conf): a coordinator with an empty coordinator.yaml in the
// current directory, `admin tokens create`, two joins, then ping and
// `tunnelmesh ping` by name. Then the system's ping by name: a third node
// joined with a dns-tagged token runs the tarball's tunnelmesh-meshdns with
// examples/Corefile, and `ping n2.mesh` answers on n1. It also checks what
// the tarball holds, the version every binary reports, and that a used
// token joins nothing.
//
// TUNNELMESH_RELEASE_DIR names a directory with a tarball already built
// (e.g. dist/); without it the test builds one.
package releasetest
