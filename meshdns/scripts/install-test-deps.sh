#!/bin/sh
# Installs the Debian packages meshdns's tests and benchmark use:
#   dnsutils  dig, for cmd/tunnelmesh-meshdns's binary test
#   dnsperf   for bench/bench.sh
set -eu
missing=""
command -v dig >/dev/null 2>&1 || missing="$missing dnsutils"
command -v dnsperf >/dev/null 2>&1 || missing="$missing dnsperf"
[ -z "$missing" ] && exit 0
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
