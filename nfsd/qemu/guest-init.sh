#!/bin/sh
# /init of the kernel-client test guest: loads e1000 and the NFSv3 client,
# configures qemu's user network (10.0.2.15, gateway 10.0.2.2), mounts
# nfstest.server:nfstest.export (kernel command line) with the kernel's NFSv3
# client, runs file operations and prints one "NFSTEST ok|FAIL <what>" line
# each, then "NFSTEST done", and powers off.
#
# With nfstest.probe=1 it then mounts again (soft, no attribute cache) and
# writes /mnt/probe every 0.2 s, printing "NFSTEST probing" at the first
# success and "NFSTEST probe failed after N" at the first failure (the test
# removes the node meanwhile), for at most 5 minutes.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null

arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^nfstest\.$1=//p"; }
ok() { echo "NFSTEST ok $*"; }
fail() { echo "NFSTEST FAIL $*"; }
check() { what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
finish() { echo "NFSTEST done"; sync; poweroff -f; sleep 10; }

for m in e1000 netfs fscache sunrpc grace lockd nfs_acl nfs nfsv3; do
	insmod /lib/modules/$m.ko || fail "insmod $m"
done
server=$(arg server)
port=$(arg port)
export=$(arg export)
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

# Without nfstest.port the kernel asks the server's port mapper (port 111).
opts="vers=3,proto=tcp,nolock,mountproto=tcp,addr=$server"
[ -n "$port" ] && opts="$opts,port=$port,mountport=$port"
if ! mount -t nfs -o "$opts" "$server:$export" /mnt; then
	fail "mount $server:$export"
	finish
fi
ok "mount $server:$export"

# A 16 MiB file written, then read back from the server (caches dropped).
dd if=/dev/urandom of=/tmp/src bs=1M count=16 2>/dev/null
want=$(sha256sum /tmp/src | cut -d' ' -f1)
check "write 16 MiB" cp /tmp/src /mnt/big.bin
sync
echo 3 >/proc/sys/vm/drop_caches
got=$(sha256sum /mnt/big.bin | cut -d' ' -f1)
check "read back sha256" [ "$want" = "$got" ]
echo "NFSTEST sha256 $got"

printf 'hello\n' >/mnt/a.txt
printf 'more\n' >>/mnt/a.txt
check "append" [ "$(cat /mnt/a.txt)" = "$(printf 'hello\nmore')" ]
check "truncate" truncate -s 5 /mnt/a.txt
check "truncated size" [ "$(stat -c %s /mnt/a.txt)" = 5 ]
check "mkdir" mkdir /mnt/d
check "rename" mv /mnt/a.txt /mnt/d/b.txt
check "chmod" chmod 600 /mnt/d/b.txt
check "mode" [ "$(stat -c %a /mnt/d/b.txt)" = 600 ]
check "remove" rm /mnt/d/b.txt
check "rmdir" rmdir /mnt/d
mkdir /mnt/many
i=0
while [ $i -lt 300 ]; do : >/mnt/many/f$i; i=$((i + 1)); done
check "readdir 300" [ "$(ls /mnt/many | wc -l)" = 300 ]
check "escape refused" sh -c '! cat /mnt/up/secret 2>/dev/null'
echo "written by the kernel client" >/mnt/guest-was-here
check "umount" umount /mnt

if [ "$(arg probe)" = 1 ]; then
	if ! mount -t nfs -o "$opts,soft,timeo=5,retrans=1,noac" "$server:$export" /mnt; then
		fail "probe mount"
		finish
	fi
	i=0
	while [ $i -lt 1500 ]; do
		if ! echo "$i" >/mnt/probe 2>/dev/null; then
			echo "NFSTEST probe failed after $i"
			finish
		fi
		[ $i = 0 ] && echo "NFSTEST probing"
		i=$((i + 1))
		sleep 0.2
	done
	fail "probe never failed"
fi
finish
