#!/usr/bin/env bash
# Boots a root filesystem that has TunnelMesh installed (by the droplets'
# install script; scripts/cloudinit-check.sh passes its coordinator root)
# with systemd as PID 1 in a container, and checks that every unit runs
# under its hardening (capabilities, ProtectSystem, system call filter):
#
#   tunnelmesh-coordinator.service   enabled by the install: active after boot;
#                                    tunnelmesh-tokens gets a token from it
#   tunnelmesh.service               with the cloud-init join drop-in and that
#                                    token: joins (TUN, address), then restarts
#                                    from its state, then runs `up` without the drop-in
#   tunnelmesh-relay/-sshgw/-meshdns with configs from the installed examples
#   tunnelmesh-nfsd.service          an export for every node: NFS (2049) and the
#                                    port mapper (111) answer on the mesh address
#   tunnelmesh-storage.service       the installed example, with the weed binary
#                                    storage/scripts/build-weed.sh cached:
#                                    /healthz on the mesh address says ready
#   tunnelmesh-dockerwatch.service   the installed example against the host's
#                                    Docker engine (its socket mounted): the event
#                                    stream is up (its metric)
#   tunnelmesh-registry.service      replaces the coordinator (Conflicts=)
#
# The image is imported from the directory (FROM scratch); the container has
# no network but loopback. dockerwatch only lists the host's containers and
# reads their events; none of them is on a network of the container, so it
# forwards nothing. The container's net.ipv4.ip_forward is set by docker
# (/proc/sys is read-only in a container).
#
#   scripts/systemd-boot-check.sh ROOTDIR
set -euo pipefail
rootdir=${1:?usage: systemd-boot-check.sh ROOTDIR}
command -v docker >/dev/null || { echo "systemd-boot-check: docker not found" >&2; exit 1; }
[ -x "$rootdir/usr/local/bin/tunnelmesh" ] || { echo "systemd-boot-check: $rootdir has no /usr/local/bin/tunnelmesh" >&2; exit 1; }
weed=$("$(dirname "$0")/../storage/scripts/build-weed.sh" --print-path)
[ -x "$weed" ] || { echo "systemd-boot-check: $weed missing: run storage/scripts/build-weed.sh (scripts/install-deps.sh does)" >&2; exit 1; }
[ -S /var/run/docker.sock ] || { echo "systemd-boot-check: /var/run/docker.sock missing (dockerwatch needs a Docker engine)" >&2; exit 1; }

tag="tunnelmesh-systemd-boot-check:$$"
name="tunnelmesh-systemd-boot-check-$$"
cleanup() {
	docker rm -f "$name" >/dev/null 2>&1 || true
	docker rmi "$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() {
	echo "systemd-boot-check: $*" >&2
	docker exec "$name" journalctl --no-pager -n 60 -u 'tunnelmesh*' >&2 2>/dev/null || true
	exit 1
}

tar -C "$rootdir" --exclude='./proc/*' -c . | docker import - "$tag" >/dev/null
# Only the capabilities systemd needs (not --privileged: it asks for every
# capability, and a machine without some of them refuses it).
docker run -d --name "$name" --network none \
	--cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_PTRACE --cap-add MKNOD --cap-add SYS_NICE \
	--cap-add IPC_LOCK --cap-add DAC_READ_SEARCH --cap-add LINUX_IMMUTABLE \
	--security-opt seccomp=unconfined --security-opt apparmor=unconfined \
	--device /dev/net/tun --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
	--sysctl net.ipv4.ip_forward=1 -v /var/run/docker.sock:/var/run/docker.sock:ro \
	-v /sys/fs/cgroup:/sys/fs/cgroup:rw --cgroupns=host \
	"$tag" /lib/systemd/systemd >/dev/null
dx() { docker exec "$name" "$@"; }

# Wait for boot; "degraded" is fine (container-irrelevant units may fail).
state=
for _ in $(seq 1 120); do
	state=$(dx systemctl is-system-running 2>/dev/null || true)
	case "$state" in running | degraded) break ;; esac
	sleep 0.5
done
case "$state" in running | degraded) ;; *) fail "systemd did not finish booting: $state" ;; esac

active() { # unit: wait up to 30 s for it to be active
	local s
	for _ in $(seq 1 60); do
		s=$(dx systemctl is-active "$1" 2>/dev/null || true)
		[ "$s" = active ] && return 0
		sleep 0.5
	done
	fail "$1 is $s, want active"
}

active tunnelmesh-coordinator.service
echo "   tunnelmesh-coordinator.service active after boot"
tok=$(dx tunnelmesh-tokens 1 | sed -n 's/^\["\(.*\)"\]$/\1/p')
[ -n "$tok" ] || fail "tunnelmesh-tokens 1 printed no token"

# The node, as the node's cloud-init sets it up, against this coordinator.
dx sh -c 'install -d -m 0755 /etc/systemd/system/tunnelmesh.service.d &&
	install -m 0600 /dev/null /etc/tunnelmesh/join.token && printf "%s\n" "$1" >/etc/tunnelmesh/join.token &&
	printf "[Service]\nExecStart=\nExecStart=/usr/local/bin/tunnelmesh join --once --coordinator https://127.0.0.1:8443 --token-file /etc/tunnelmesh/join.token --listen-port 51820\n" \
		>/etc/systemd/system/tunnelmesh.service.d/join.conf &&
	systemctl daemon-reload && systemctl enable --now tunnelmesh.service' sh "$tok" >/dev/null 2>&1 ||
	fail "enable --now tunnelmesh.service"
joined() {
	local out
	for _ in $(seq 1 60); do
		out=$(dx tunnelmesh status 2>/dev/null || true)
		case "$out" in *"100.64."*reachable*) return 0 ;; esac
		sleep 0.5
	done
	fail "$1: tunnelmesh status = $out"
}
active tunnelmesh.service
joined "joined with the token"
dx test -e /sys/class/net/tunnelmesh0 || fail "no tunnelmesh0 in the container"
echo "   tunnelmesh.service joined (TUN up, coordinator reachable)"
dx systemctl restart tunnelmesh.service
active tunnelmesh.service
joined "restarted from its state"
dx sh -c 'rm -r /etc/systemd/system/tunnelmesh.service.d && systemctl daemon-reload && systemctl restart tunnelmesh.service'
active tunnelmesh.service
dx systemctl show -p ExecStart tunnelmesh.service | grep -q 'argv\[\]=/usr/local/bin/tunnelmesh up ' ||
	fail "tunnelmesh.service without the drop-in does not run tunnelmesh up"
joined "tunnelmesh up"
echo "   tunnelmesh.service restarts from its state; runs tunnelmesh up without the drop-in"

# The services, with configs from the installed examples.
dx sh -c 'd=/usr/local/share/doc/tunnelmesh/examples
	sed -e "s/^listen: .*/listen: \":9443\"/" -e "s/^metrics: .*/metrics: \"\"/" -e "/^allow_keys:/,/^\$/d" $d/relay.example.yaml >/etc/tunnelmesh/relay.yaml
	cp $d/sshgw.example.yaml /etc/tunnelmesh/sshgw.yaml
	sed "s|forward . /etc/resolv.conf|forward . 127.0.0.1:5399|" $d/Corefile >/etc/tunnelmesh/Corefile
	systemctl start tunnelmesh-relay.service tunnelmesh-sshgw.service tunnelmesh-meshdns.service' ||
	fail "start the services"
for u in tunnelmesh-relay.service tunnelmesh-sshgw.service tunnelmesh-meshdns.service; do
	active "$u"
	sleep 1
	active "$u" # still up a second later
done
echo "   tunnelmesh-relay, -sshgw, -meshdns active"

# nfsd, storage and dockerwatch beside the joined node.
meship=$(dx sed -n 's/.*"ip": *"\([0-9.]*\)".*/\1/p' /var/lib/tunnelmesh/node.json)
[ -n "$meship" ] || fail "no mesh address in node.json"
docker cp "$weed" "$name:/usr/local/bin/weed" >/dev/null || fail "docker cp weed"
dx sh -c 'd=/usr/local/share/doc/tunnelmesh/examples
	install -d -m 0755 /srv/nfs/shared
	printf "credentials: /var/lib/tunnelmesh/credentials.json\nexports:\n  - name: shared\n    dir: /srv/nfs/shared\n    allow:\n      read_write: [\"*\"]\n" >/etc/tunnelmesh/nfsd.yaml
	cp $d/storage.example.yaml /etc/tunnelmesh/storage.yaml
	cp $d/dockerwatch.example.yaml /etc/tunnelmesh/dockerwatch.yaml
	systemctl start tunnelmesh-nfsd.service tunnelmesh-storage.service tunnelmesh-dockerwatch.service' ||
	fail "start nfsd, storage, dockerwatch"
listening() { # port: wait up to 60 s for a TCP connect to the mesh address
	for _ in $(seq 1 120); do
		dx bash -c 'exec 3<>/dev/tcp/$1/$2' sh "$meship" "$1" 2>/dev/null && return 0
		sleep 0.5
	done
	fail "nothing answers on $meship:$1"
}
active tunnelmesh-nfsd.service
listening 2049
listening 111
echo "   tunnelmesh-nfsd active, NFS and the port mapper on $meship"
active tunnelmesh-dockerwatch.service
for _ in $(seq 1 60); do
	up=$(dx curl -fsS "http://$meship:9103/metrics" 2>/dev/null | sed -n 's/^tunnelmesh_dockerwatch_event_stream_up //p' || true)
	[ "$up" = 1 ] && break
	sleep 0.5
done
[ "$up" = 1 ] || fail "tunnelmesh-dockerwatch: event stream not up (tunnelmesh_dockerwatch_event_stream_up = $up)"
echo "   tunnelmesh-dockerwatch active, the engine's event stream up"
active tunnelmesh-storage.service
ready=
for _ in $(seq 1 240); do # weed's first start is slow on a busy machine
	ready=$(dx curl -fsS "http://$meship:9001/healthz" 2>/dev/null) && break
	sleep 0.5
done
[ -n "$ready" ] || fail "tunnelmesh-storage: /healthz on $meship:9001 not ready within 120 s"
echo "   tunnelmesh-storage active, SeaweedFS ready ($ready)"
dx systemctl start tunnelmesh-registry.service
active tunnelmesh-registry.service
[ "$(dx systemctl is-active tunnelmesh-coordinator.service || true)" != active ] || fail "tunnelmesh-registry.service did not stop the coordinator (Conflicts=)"
echo "   tunnelmesh-registry.service active, the coordinator stopped"
# None of them crashed and came back (Restart=on-failure would hide it).
sleep 3
for u in tunnelmesh.service tunnelmesh-relay.service tunnelmesh-sshgw.service tunnelmesh-meshdns.service tunnelmesh-registry.service \
	tunnelmesh-nfsd.service tunnelmesh-storage.service tunnelmesh-dockerwatch.service; do
	n=$(dx systemctl show -p NRestarts --value "$u")
	[ "$n" = 0 ] || fail "$u restarted $n times"
	active "$u"
done
echo "systemd-boot-check: ok"
