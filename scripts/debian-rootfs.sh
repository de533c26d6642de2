#!/usr/bin/env bash
# Builds (once) a minimal Debian root filesystem with debootstrap from the
# machine's Debian mirror and prints its path. The cloud-init check runs the
# droplets' install script in it (chroot), as on a fresh Debian droplet.
#
#   scripts/debian-rootfs.sh            # prints e.g. /root/.cache/tunnelmesh/debian-bookworm-rootfs
#
# Cached under $TUNNELMESH_CACHE (default ~/.cache/tunnelmesh): a finished rootfs is
# marked with .complete and reused; an interrupted build is started afresh.
# The mirror and suite come from apt's sources (DEBIAN_MIRROR, DEBIAN_SUITE override).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

cache=${TUNNELMESH_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/tunnelmesh}
mirror=${DEBIAN_MIRROR:-}
suite=${DEBIAN_SUITE:-}
if [ -z "$mirror" ] || [ -z "$suite" ]; then
	# deb822 (*.sources: URIs:/Suites:) or one-line (deb URL SUITE ...) sources.
	src=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	m=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}' <<<"$src")
	s=$(awk -v m="$m" '/^URIs:/ {u=$2} /^Suites:/ && u==m {print $2; exit}' <<<"$src")
	if [ -z "$m" ]; then
		read -r m s < <(awk '$1=="deb" && $2 !~ /^\[/ && $2 ~ /\/debian\/?$/ {print $2, $3; exit}' /etc/apt/sources.list 2>/dev/null || true) || true
	fi
	mirror=${mirror:-${m:-http://deb.debian.org/debian}}
	suite=${suite:-${s:-bookworm}}
fi
root="$cache/debian-$suite-rootfs"
if [ -f "$root/.complete" ]; then
	echo "$root"
	exit 0
fi
command -v debootstrap >/dev/null || { echo "debian-rootfs: debootstrap not installed (scripts/install-deps.sh)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "debian-rootfs: needs root (debootstrap)" >&2; exit 1; }
mkdir -p "$cache"
rm -rf "$root" "$root.tmp"
echo "debian-rootfs: debootstrap $suite from $mirror into $root (once)" >&2
debootstrap --variant=minbase --include=systemd,curl,ca-certificates \
	"$suite" "$root.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
	{ tail -20 "$cache/debootstrap.log" >&2; echo "debian-rootfs: debootstrap failed (log: $cache/debootstrap.log)" >&2; exit 1; }
touch "$root.tmp/.complete"
mv "$root.tmp" "$root"
echo "$root"
