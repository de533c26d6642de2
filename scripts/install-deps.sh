#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine (Go, gcc, git and Docker are
# assumed). Idempotent: installs only what is missing. Needs root for apt-get.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

# Debian packages the tests use, by the command that proves each is present.
declare -A pkgs=(
  [ip]=iproute2
  [iptables]=iptables
  [nft]=nftables
  [dig]=dnsutils
  [ping]=iputils-ping
  [sshd]=openssh-server
  [iperf3]=iperf3
  [wg]=wireguard-tools
  [promtool]=prometheus   # promtool for the alert rule tests, prometheus for the observability tests
  [dnsperf]=dnsperf
  [unshare]=util-linux
  [cloud-init]=cloud-init
  [debootstrap]=debootstrap
  [systemd-analyze]=systemd
  [pg_ctlcluster]=postgresql   # the registry's PostgreSQL store tests (registry/internal/pgtest)
  [nfs-ls]=libnfs-utils   # nfs-ls, nfs-cp, nfs-cat: the userspace NFS client of the nfsd tests
  [qemu-system-x86_64]=qemu-system-x86   # boots Debian's kernel for the nfsd kernel-client test
  [busybox]=busybox-static               # that guest's initramfs (must be the static build)
  # S3 clients of the storage lab, by path: a pyenv shim may shadow `aws`.
  [/usr/bin/aws]=awscli
  [/usr/bin/s3cmd]=s3cmd
)
missing=()
for cmd in "${!pkgs[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkgs[$cmd]}")
done
# Libraries, by package: libtirpc3 runs the showmount that the nfsd tests fetch
# from nfs-common (nfsd/scripts/fetch-showmount.sh; nfs-common itself is not
# installed: its rpcbind would take port 111).
for lib in libtirpc3; do
  dpkg -s "$lib" >/dev/null 2>&1 || missing+=("$lib")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go tools.
gobin="$(go env GOPATH)/bin"
if [ ! -x "$gobin/staticcheck" ]; then
  echo "install-deps: go install staticcheck"
  GOFLAGS= go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
# terraform 1.5.7 and tflint (make terraform-validate), each only when missing.
"$(dirname "$0")/terraform-tools.sh" >/dev/null

# SeaweedFS, which the storage module supervises and its tests run: built from
# the Go module proxy once per machine (several minutes), then cached.
"$(dirname "$0")/../storage/scripts/build-weed.sh" >/dev/null
