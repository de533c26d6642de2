#!/usr/bin/env bash
# Fetches Debian's showmount (package nfs-common) for the tests without
# installing nfs-common: installing it pulls in rpcbind, whose daemon would
# take port 111 on the test machine. apt-get download + dpkg-deb -x, as for
# the qemu guest's kernel; showmount needs only libtirpc3 at run time.
# Output: CACHE/showmount, fetched again only when the package version or
# this script changes.
#
#   nfsd/scripts/fetch-showmount.sh CACHE_DIR
set -euo pipefail
cache=${1:?usage: fetch-showmount.sh CACHE_DIR}
ver=$(apt-cache policy nfs-common | awk '/Candidate:/ {print $2; exit}')
[ -n "$ver" ] && [ "$ver" != "(none)" ] || { echo "fetch-showmount: no nfs-common package (apt-get update?)" >&2; exit 1; }
stamp=$(sha256sum <"$0" | cut -c1-16)-$ver
mkdir -p "$cache"
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$stamp" ] && [ -x "$cache/showmount" ]; then
	exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download nfs-common >/dev/null 2>&1) || { echo "fetch-showmount: apt-get download nfs-common failed" >&2; exit 1; }
dpkg-deb -x "$work"/nfs-common_*.deb "$work/pkg"
cp "$work/pkg/sbin/showmount" "$cache/showmount.tmp"
mv "$cache/showmount.tmp" "$cache/showmount"
"$cache/showmount" --version >/dev/null 2>&1 || { echo "fetch-showmount: $cache/showmount does not run (libtirpc3 missing?)" >&2; exit 1; }
echo "$stamp" >"$cache/stamp"
