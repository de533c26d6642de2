#!/usr/bin/env bash
# Builds the release tarballs: dist/tunnelmesh-linux-<arch>.tar.gz for each
# arch and dist/SHA256SUMS. Each tarball holds, at its top level (so that
# `./tunnelmesh` works right after extracting it, as the getting-started says):
#
#   tunnelmesh tunnelmesh-registry tunnelmesh-relay tunnelmesh-sshgw tunnelmesh-meshdns
#   tunnelmesh-storage tunnelmesh-nfsd tunnelmesh-dockerwatch
#                     static binaries (CGO_ENABLED=0), version stamped from git
#   systemd/          units for the coordinator, the node and each service
#   examples/         commented example configs
#   README.md LICENSE VERSION
#
# SeaweedFS's `weed`, which tunnelmesh-storage runs, is not in the tarball
# (164 MB static, ten times the rest): with WEED=1 it is a release asset of
# its own, dist/weed-linux-<arch>.gz (gzip of the binary built and cached by
# storage/scripts/build-weed.sh), with its line in SHA256SUMS. build-weed.sh
# builds for the machine's own architecture only, so WEED=1 covers that one.
#
#   scripts/release.sh                       # amd64 and arm64 into dist/
#   ARCHES=amd64 OUT=/tmp/rel scripts/release.sh
#   VERSION=v1.0.0 scripts/release.sh        # default: git describe --tags --always --dirty
#   WEED=1 scripts/release.sh                # and dist/weed-linux-<host arch>.gz
#
# The archives are reproducible: sorted names, owner root, mtime of the last
# commit, gzip without a timestamp.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
ARCHES=${ARCHES:-amd64 arm64}
OUT=${OUT:-dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
MTIME=$(git log -1 --format=%ct 2>/dev/null || echo 0)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# binary              module    version variable
BINARIES=(
	"tunnelmesh          agent    github.com/tunnelmesh/tunnelmesh/agent/internal/cli.Version"
	"tunnelmesh-registry registry main.version"
	"tunnelmesh-relay    relay    main.version"
	"tunnelmesh-sshgw    sshgw    main.version"
	"tunnelmesh-meshdns  meshdns  main.version"
	"tunnelmesh-storage  storage  main.version"
	"tunnelmesh-nfsd     nfsd     main.version"
	"tunnelmesh-dockerwatch dockerwatch main.version"
)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
tarballs=()
for arch in $ARCHES; do
	name=tunnelmesh-linux-$arch
	dir=$stage/$name
	mkdir -p "$dir/systemd" "$dir/examples"
	for entry in "${BINARIES[@]}"; do
		read -r bin mod var <<<"$entry"
		echo "== $name/$bin ($VERSION)" >&2
		(cd "$mod" && GOWORK=off GOOS=linux GOARCH=$arch CGO_ENABLED=0 \
			"$GO" build -trimpath -ldflags="-s -w -X $var=$VERSION" -o "$dir/$bin" "./cmd/$bin")
	done
	install -m 0644 packaging/systemd/*.service "$dir/systemd/"
	install -m 0644 registry/coordinator.example.yaml "$dir/examples/coordinator.example.yaml"
	install -m 0644 relay/internal/config/example.yaml "$dir/examples/relay.example.yaml"
	install -m 0644 sshgw/internal/config/example.yaml "$dir/examples/sshgw.example.yaml"
	install -m 0644 packaging/examples/Corefile "$dir/examples/Corefile"
	install -m 0644 registry/policy/default.yaml "$dir/examples/policy.example.yaml"
	install -m 0644 storage/internal/config/example.yaml "$dir/examples/storage.example.yaml"
	install -m 0644 nfsd/nfsd.example.yaml "$dir/examples/nfsd.example.yaml"
	install -m 0644 dockerwatch/dockerwatch.example.yaml "$dir/examples/dockerwatch.example.yaml"
	install -m 0644 packaging/README.md "$dir/README.md"
	install -m 0644 LICENSE "$dir/LICENSE"
	echo "$VERSION" >"$dir/VERSION"
	# Entries are named without "./", so extracting never touches the
	# directory it is extracted into.
	(cd "$dir" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$MTIME" -cf - -- *) |
		gzip -9n >"$OUT/$name.tar.gz"
	tarballs+=("$name.tar.gz")
done
if [ -n "${WEED:-}" ]; then
	host=$("$GO" env GOARCH)
	for arch in $ARCHES; do
		if [ "$arch" != "$host" ]; then
			echo "== weed-linux-$arch: not built (storage/scripts/build-weed.sh builds for $host only)" >&2
			continue
		fi
		weed=$(storage/scripts/build-weed.sh)
		echo "== weed-linux-$arch.gz ($weed)" >&2
		gzip -9n <"$weed" >"$OUT/weed-linux-$arch.gz"
		tarballs+=("weed-linux-$arch.gz")
	done
fi
(cd "$OUT" && sha256sum "${tarballs[@]}" >SHA256SUMS)
echo "== $OUT/SHA256SUMS" >&2
cat "$OUT/SHA256SUMS"
