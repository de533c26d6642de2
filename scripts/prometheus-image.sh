#!/usr/bin/env bash
# Build tunnelmesh/prometheus:$TAG (TAG defaults to dev) for the compose
# `monitoring` profile: Debian's prometheus (the host's /usr/bin/prometheus,
# from scripts/install-deps.sh) and the libraries it links, staged in
# bin/prometheus-root, then observability/prometheus/Dockerfile FROM
# scratch. Nothing is pulled.
#
#   scripts/prometheus-image.sh
set -euo pipefail

cd "$(dirname "$0")/.."
TAG=${TAG:-dev}
bin=/usr/bin/prometheus
if [ ! -x "$bin" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "prometheus-image.sh: $bin not found; as root: apt-get install --no-install-recommends prometheus" >&2; exit 1; }
	echo "prometheus-image.sh: apt-get install prometheus" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
command -v docker >/dev/null || { echo "prometheus-image.sh: docker not found" >&2; exit 1; }

root=bin/prometheus-root
rm -rf "$root"
mkdir -p "$root/usr/bin" "$root/prometheus" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$bin" "$root/usr/bin/prometheus"
# The dynamic loader and every library ldd lists, at the same paths.
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
	cp --parents -L "$lib" "$root/"
done

echo "== tunnelmesh/prometheus:$TAG ($("$bin" --version 2>&1 | head -1))" >&2
docker build --quiet -f observability/prometheus/Dockerfile -t "tunnelmesh/prometheus:$TAG" . >/dev/null
size=$(docker image inspect --format '{{.Size}}' "tunnelmesh/prometheus:$TAG")
awk -v i="tunnelmesh/prometheus:$TAG" -v s="$size" 'BEGIN { printf "%-28s %8.1f MB\n", i, s / 1e6 }'
