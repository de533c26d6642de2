#!/usr/bin/env bash
# Builds the SeaweedFS `weed` binary that tunnelmesh-storage supervises, once per machine.
#
# SeaweedFS's go.mod has a `replace` directive, so `go install module@version` refuses it; the
# module is downloaded through the Go module proxy and built in a writable copy of its directory.
# The result is a static binary (CGO_ENABLED=0) cached at
#   ${TUNNELMESH_CACHE:-$HOME/.cache/tunnelmesh}/weed-<version>/weed
# and the script prints that path. A second run finds it and returns at once.
#
# Usage: build-weed.sh [--print-path]   (--print-path: print where the binary goes, build nothing)
set -euo pipefail

module=github.com/seaweedfs/seaweedfs
version=v0.0.0-20261109003541-7506e5f91cd6
cache="${TUNNELMESH_CACHE:-$HOME/.cache/tunnelmesh}"
outdir="$cache/weed-$version"
out="$outdir/weed"

if [ "${1:-}" = "--print-path" ]; then
  echo "$out"
  exit 0
fi
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$outdir"
work="$(mktemp -d "$outdir/build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

echo "build-weed: go mod download $module@$version" >&2
dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "build-weed: go mod download did not report a module directory" >&2
  exit 1
fi
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"

echo "build-weed: go build ./weed (static; several minutes)" >&2
(cd "$work/src" && CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false \
  go build -trimpath -ldflags='-s -w' -o "$work/weed" ./weed)
"$work/weed" version >&2
mv "$work/weed" "$out"
echo "$out"
