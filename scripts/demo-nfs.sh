#!/usr/bin/env bash
# The NFS step of `make demo` (scripts/demo.sh runs it last; it also runs on its own
# against a running demo mesh): node1 writes a file to the export "shared" of the files
# node (tunnelmesh-nfsd, compose/config/nfsd.yaml) and node3 reads it back, both with
# libnfs's userspace client, over the mesh. Then it prints the mount line for a Linux host.
#
# The agent images are FROM scratch (no NFS client in them), so the client runs on this
# host inside a node container's network namespace (nsenter -n, as root; sudo otherwise):
# its packets leave through that node's tunnelmesh0 and reach files over the mesh as that
# node. Only the network namespace is entered, so names are resolved by this host's
# resolver, which knows nothing of .mesh: the client is given files' mesh address, and the
# command a node whose resolver is meshdns would type (nfs://nfs.mesh/...) is printed.
# libnfs-utils is installed with apt-get when missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
compose=scripts/compose.sh

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

echo
echo "== NFS: tunnelmesh-nfsd on the files node exports \"shared\" (nfs://nfs.mesh/shared)"
if ! command -v nfs-cp >/dev/null || ! command -v nfs-cat >/dev/null || ! command -v nfs-ls >/dev/null; then
	echo "installing libnfs-utils (nfs-cp, nfs-cat, nfs-ls: libnfs's userspace NFS client)"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnfs-utils >/dev/null
fi
command -v nsenter >/dev/null || { echo "demo-nfs: nsenter (util-linux) not found" >&2; exit 1; }

pid_of() {
	local id
	id=$($compose ps -q "$1")
	[ -n "$id" ] || { echo "demo-nfs: no container for service $1" >&2; return 1; }
	docker inspect -f '{{.State.Pid}}' "$id"
}

# files' mesh address, from node1's netmap (the ping also waits for the tunnel).
deadline=$((SECONDS + 120))
until pong=$($compose exec -T node1 tunnelmesh ping files -c 1 2>/dev/null); do
	if [ $SECONDS -gt $deadline ]; then
		echo "demo-nfs: node1 cannot reach files after 120 s; logs:" >&2
		$compose logs --tail 50 nfs-agent nfsd >&2
		exit 1
	fi
	sleep 1
done
files_ip=$(sed -n 's/^pong from files (\([0-9.]*\)).*/\1/p' <<<"$pong")
[ -n "$files_ip" ] || { echo "demo-nfs: no address in: $pong" >&2; exit 1; }
node1_pid=$(pid_of node1)
node3_pid=$(pid_of node3)
url=nfs://$files_ip/shared

# nfsd answers once the files agent has its mesh address and nfsd has the netmap.
deadline=$((SECONDS + 120))
until as_root nsenter -n -t "$node1_pid" timeout 10 nfs-ls "$url" >/dev/null 2>&1; do
	if [ $SECONDS -gt $deadline ]; then
		echo "demo-nfs: nfs-ls $url from node1 fails after 120 s:" >&2
		as_root nsenter -n -t "$node1_pid" timeout 10 nfs-ls "$url" >&2 || true
		$compose logs --tail 50 nfsd >&2
		exit 1
	fi
	sleep 1
done

# A new name each run: nfs-cp does not replace an existing file (NFS3ERR_EXIST).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stamp=$(date -u +%Y%m%dT%H%M%SZ)
name=hello-from-node1-$stamp.txt
msg="hello from node1 over the mesh, $stamp"
printf '%s\n' "$msg" >"$tmp/$name"
echo "node1 writes $name"
echo "  on a node:  nfs-cp $name nfs://nfs.mesh/shared/$name"
echo "  run here:   nsenter -n -t $node1_pid nfs-cp $name $url/$name"
if ! as_root nsenter -n -t "$node1_pid" timeout 30 nfs-cp "$tmp/$name" "$url/$name" >/dev/null; then
	echo "demo-nfs: nfs-cp to $url/$name from node1 failed" >&2
	exit 1
fi
echo "node3 (on the other network, through the relay) reads it"
echo "  on a node:  nfs-cat nfs://nfs.mesh/shared/$name"
echo "  run here:   nsenter -n -t $node3_pid nfs-cat $url/$name"
if ! got=$(as_root nsenter -n -t "$node3_pid" timeout 30 nfs-cat "$url/$name"); then
	echo "demo-nfs: nfs-cat $url/$name from node3 failed" >&2
	exit 1
fi
if [ "$got" != "$msg" ]; then
	echo "demo-nfs: node3 read \"$got\", node1 wrote \"$msg\"" >&2
	exit 1
fi
echo "NFS: node3 read what node1 wrote: $got"
echo "Mount it on a Linux host that is a mesh node (nfs-common installed, .mesh resolved by meshdns):"
echo "  mount -t nfs -o vers=3,proto=tcp,mountproto=tcp,nolock nfs.mesh:/shared /mnt"
