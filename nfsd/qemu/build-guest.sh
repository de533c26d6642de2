#!/usr/bin/env bash
# Builds the qemu guest the kernel-client test boots: Debian's kernel
# (apt-get download + dpkg-deb -x, nothing installed into /boot) and an
# initramfs of busybox-static, the e1000 and NFSv3 modules, and guest-init.sh
# as /init. Output: CACHE/vmlinuz and CACHE/initramfs.cpio.gz, rebuilt only
# when this script, guest-init.sh or the kernel version changes.
#
#   nfsd/qemu/build-guest.sh CACHE_DIR [KERNEL_PACKAGE]
#
# KERNEL_PACKAGE defaults to what Debian's linux-image-amd64 depends on.
# Needs apt-get, dpkg-deb, busybox (busybox-static) and gzip.
set -euo pipefail
cache=${1:?usage: build-guest.sh CACHE_DIR [KERNEL_PACKAGE]}
here=$(cd "$(dirname "$0")" && pwd)
pkg=${2:-$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')}
[ -n "$pkg" ] || { echo "build-guest: no kernel package (apt-get update?)" >&2; exit 1; }
busybox=$(command -v busybox) || { echo "build-guest: busybox not found (busybox-static)" >&2; exit 1; }
file "$busybox" 2>/dev/null | grep -q "statically linked" || ldd "$busybox" 2>&1 | grep -q "not a dynamic" ||
	{ echo "build-guest: $busybox is not static (install busybox-static)" >&2; exit 1; }

stamp=$(cat "$0" "$here/guest-init.sh" | sha256sum | cut -c1-16)-$pkg
mkdir -p "$cache"
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$stamp" ] && [ -f "$cache/vmlinuz" ] && [ -f "$cache/initramfs.cpio.gz" ]; then
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "$pkg" >/dev/null 2>&1) || { echo "build-guest: apt-get download $pkg failed" >&2; exit 1; }
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/pkg"
kver=${pkg#linux-image-}
mods="$work/pkg/lib/modules/$kver/kernel"

root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,mnt,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
# Load order: each module after the ones it depends on.
for m in drivers/net/ethernet/intel/e1000/e1000 fs/netfs/netfs fs/fscache/fscache net/sunrpc/sunrpc \
	fs/nfs_common/grace fs/lockd/lockd fs/nfs_common/nfs_acl fs/nfs/nfs fs/nfs/nfsv3; do
	cp "$mods/$m.ko" "$root/lib/modules/"
done
cp "$here/guest-init.sh" "$root/init"
chmod 755 "$root/init"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -9) >"$cache/initramfs.cpio.gz.tmp"
cp "$work"/pkg/boot/vmlinuz-"$kver" "$cache/vmlinuz.tmp"
mv "$cache/initramfs.cpio.gz.tmp" "$cache/initramfs.cpio.gz"
mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
echo "$stamp" >"$cache/stamp"
echo "build-guest: $pkg, initramfs $(du -k "$cache/initramfs.cpio.gz" | cut -f1) KiB" >&2
