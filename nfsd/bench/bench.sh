#!/usr/bin/env bash
# bench.sh: NFS over the mesh against NFS over the plain network (underlay), in
# two network namespaces joined by a veth pair, in one run.
#
#   sudo nfsd/bench/bench.sh [SIZE_MIB]      (from anywhere in the repository; default 1024)
#
# Namespace A holds the coordinator and the client node bench-a; namespace B the
# server node bench-b (tagged nfs, --advertise-nfs) with tunnelmesh-nfsd on its mesh
# address, and underlay/ on its veth address: nfsd's own server package (same access
# checks, handles and go-nfs handler) with a fixed netmap instead of the registry's.
# Each serves its own directory under the same /tmp.
#
# The client is nfsbench/ (go-nfs-client) from namespace A, for both paths.
# Workloads: sequential write of SIZE_MIB MiB in 1 MiB WRITEs (FILE_SYNC) then
# COMMIT, and sequential read of it back in 1 MiB READs, each with one request in
# flight and with BENCH_INFLIGHT (default 4; 1 leaves these runs out) pipelined on
# the one connection, as the kernel client's read-ahead and write-behind do; and a
# metadata run: BENCH_FILES (default 10000) files of 100 bytes created, written,
# listed and removed in a new directory. Before them, iperf3 measures each path's raw
# TCP capacity for BENCH_IPERF_SECS (default 3) seconds: over the mesh that is the
# tunnel's own ceiling, the context for the NFS numbers.
#
# Each round runs two phases: the veth at full speed (faster than any userspace
# tunnel), then the veth shaped to BENCH_SHAPE_RATE (default 1gbit, a real NIC's
# rate; tc tbf on both ends, burst BENCH_SHAPE_BURST, default 256kb; "off" leaves
# the phase out), where both paths cross the same shaped link. Within each phase
# underlay and mesh alternate; BENCH_ROUNDS (default 3) rounds. The table shows
# medians per phase and every round's mesh/underlay ratio.
#
# Needs root, Go, iproute2 (ip, tc) and iperf3. Every address lives inside the two
# namespaces it creates; everything is removed on exit.
set -euo pipefail

SIZE_MIB=${1:-${BENCH_SIZE_MIB:-1024}}
FILES=${BENCH_FILES:-10000}
ROUNDS=${BENCH_ROUNDS:-3}
INFLIGHT=${BENCH_INFLIGHT:-4}
IPERF_SECS=${BENCH_IPERF_SECS:-3}
SHAPE_RATE=${BENCH_SHAPE_RATE:-1gbit}
SHAPE_BURST=${BENCH_SHAPE_BURST:-256kb}
[[ $INFLIGHT =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: BENCH_INFLIGHT $INFLIGHT: want a positive number" >&2; exit 2; }
[[ $IPERF_SECS =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: BENCH_IPERF_SECS $IPERF_SECS: want a positive number of seconds" >&2; exit 2; }
for tool in ip tc iperf3; do
	command -v "$tool" >/dev/null || { echo "bench.sh: needs $tool (iproute2, iperf3: scripts/install-deps.sh)" >&2; exit 1; }
done
[[ $SIZE_MIB =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: SIZE_MIB $SIZE_MIB: want a positive number of MiB" >&2; exit 2; }

if [[ $(id -u) -ne 0 ]]; then
	echo "bench.sh: needs root (network namespaces, TUN devices)" >&2
	exit 1
fi

HERE=$(cd "$(dirname "$0")" && pwd)
NFSD=$(cd "$HERE/.." && pwd)
AGENT=$(cd "$NFSD/../agent" && pwd)
WORK=$(mktemp -d /tmp/tunnelmesh-nfsbench.XXXXXX)
ID=$$
NA=tmnfsA$ID
NB=tmnfsB$ID
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	ip netns del "$NA" 2>/dev/null || true
	ip netns del "$NB" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }

log "building tunnelmesh, tunnelmesh-nfsd, underlay and nfsbench"
(cd "$AGENT" && CGO_ENABLED=0 GOWORK=off go build -o "$WORK/tunnelmesh" ./cmd/tunnelmesh)
(cd "$NFSD" && CGO_ENABLED=0 GOWORK=off go build -o "$WORK/tunnelmesh-nfsd" ./cmd/tunnelmesh-nfsd)
(cd "$NFSD" && CGO_ENABLED=0 GOWORK=off go build -o "$WORK/underlay" ./bench/underlay)
(cd "$NFSD" && CGO_ENABLED=0 GOWORK=off go build -o "$WORK/nfsbench" ./bench/nfsbench)

# --- namespaces --------------------------------------------------------------
ip netns add "$NA"
ip netns add "$NB"
ip -n "$NA" link add veth0 type veth peer name veth0 netns "$NB"
ip -n "$NA" addr add 10.97.0.1/24 dev veth0
ip -n "$NB" addr add 10.97.0.2/24 dev veth0
for ns in "$NA" "$NB"; do
	ip -n "$ns" link set lo up
	ip -n "$ns" link set veth0 up
done
ina() { ip netns exec "$NA" "$@"; }

# --- mesh: coordinator (default policy: tcp/2049 open on nodes tagged nfs) ----
cat >"$WORK/coordinator.yaml" <<CFG
listen: 10.97.0.1:8443
data_dir: $WORK/coord
mesh_cidr: 100.96.0.0/16
stun_listen: "off"
log_level: warn
CFG
# Long-running processes are started with ip netns exec directly (not through a
# shell function), so that $! is the process itself.
ip netns exec "$NA" "$WORK/tunnelmesh" coordinator --config "$WORK/coordinator.yaml" >"$WORK/coord.log" 2>&1 &
PIDS+=($!)
TOKEN="" NFSTOKEN=""
for i in $(seq 100); do
	TOKEN=$(ina "$WORK/tunnelmesh" admin --config "$WORK/coordinator.yaml" tokens create --reusable 2>/dev/null) && break
	sleep 0.1
done
[[ -n $TOKEN ]] || { log "coordinator did not start:"; cat "$WORK/coord.log" >&2; exit 1; }
NFSTOKEN=$(ina "$WORK/tunnelmesh" admin --config "$WORK/coordinator.yaml" tokens create --reusable --tag nfs)
ip netns exec "$NA" "$WORK/tunnelmesh" join --coordinator https://10.97.0.1:8443 --token "$TOKEN" --name bench-a \
	--state-dir "$WORK/a" --interface tmnfs0 --dns=false --log-level warn >"$WORK/a.log" 2>&1 &
PIDS+=($!)
PID_A=$!
ip netns exec "$NB" "$WORK/tunnelmesh" join --coordinator https://10.97.0.1:8443 --token "$NFSTOKEN" --name bench-b \
	--state-dir "$WORK/b" --interface tmnfs0 --dns=false --log-level warn --advertise-nfs >"$WORK/b.log" 2>&1 &
PIDS+=($!)
PID_B=$!
MESH_B=""
for i in $(seq 200); do
	MESH_B=$("$WORK/tunnelmesh" status --json --state-dir "$WORK/b" 2>/dev/null | sed -n 's/^  "ip": "\(.*\)",$/\1/p') || true
	peers=$("$WORK/tunnelmesh" status --json --state-dir "$WORK/a" 2>/dev/null | grep -c '"name": "bench-b"' || true)
	[[ -n $MESH_B && $peers == 1 ]] && break
	sleep 0.1
done
[[ -n $MESH_B ]] || { log "tunnelmesh nodes did not come up:"; cat "$WORK/a.log" "$WORK/b.log" >&2; exit 1; }

# --- servers -----------------------------------------------------------------
mkdir -p "$WORK/mesh-export" "$WORK/underlay-export"
cat >"$WORK/nfsd.yaml" <<CFG
credentials: $WORK/b/credentials.json
portmap: false
exports:
  - name: shared
    dir: $WORK/mesh-export
    allow:
      read_write: [bench-a]
CFG
ip netns exec "$NB" "$WORK/tunnelmesh-nfsd" -config "$WORK/nfsd.yaml" -log-level warn >"$WORK/nfsd.log" 2>&1 &
PIDS+=($!)
PID_NFSD=$!
ip netns exec "$NB" "$WORK/underlay" -listen 10.97.0.2:2049 -dir "$WORK/underlay-export" \
	-client 10.97.0.1 -prefix 10.97.0.0/24 >"$WORK/underlay.log" 2>&1 &
PIDS+=($!)

# iperf3 servers: on the underlay, and on the mesh address at tcp/111, which the
# default policy opens on nodes tagged nfs (the port mapper's port; nfsd runs here
# with portmap: false, so it is free).
ip netns exec "$NB" iperf3 -s -B 10.97.0.2 -p 5201 >"$WORK/iperf-underlay.log" 2>&1 &
PIDS+=($!)
ip netns exec "$NB" iperf3 -s -B "$MESH_B" -p 111 >"$WORK/iperf-mesh.log" 2>&1 &
PIDS+=($!)

# shape on|off: the veth pair at SHAPE_RATE, or at full speed.
shape() {
	for ns in "$NA" "$NB"; do
		if [[ $1 == on ]]; then
			ip netns exec "$ns" tc qdisc replace dev veth0 root tbf rate "$SHAPE_RATE" burst "$SHAPE_BURST" latency 50ms
		else
			ip netns exec "$ns" tc qdisc del dev veth0 root 2>/dev/null || true
		fi
	done
}

# bench PHASE PATH ADDR WORKLOAD ARGS...: one timed run, appended to results as
# "PHASE PATH WORKLOAD SECONDS"; a failed run fails the script.
bench() {
	local phase=$1 path=$2 addr=$3 what=$4 secs
	shift 4
	if ! secs=$(ina "$WORK/nfsbench" -addr "$addr:2049" "$@" "${what%%-*}" 2>"$WORK/nfsbench.err"); then
		log "$what over the $path ($phase) failed:"
		cat "$WORK/nfsbench.err" >&2
		tail -20 "$WORK/nfsd.log" "$WORK/underlay.log" >&2
		exit 1
	fi
	echo "$phase $path $what $secs" >>"$WORK/results"
}

# tcp PHASE PATH ADDR PORT: iperf3's receiver rate in Mbit/s, appended to results
# as "PHASE PATH tcp MBITS".
tcp() {
	local phase=$1 path=$2 addr=$3 port=$4 mbits=""
	for try in 1 2 3; do
		mbits=$(ina iperf3 -c "$addr" -p "$port" -t "$IPERF_SECS" -f m 2>"$WORK/iperf.err" | awk '/receiver/ {print $(NF-2)}') && [[ -n $mbits ]] && break
		sleep 0.5 # the server may still be finishing the previous test
	done
	[[ -n $mbits ]] || { log "iperf3 over the $path ($phase) failed:"; cat "$WORK/iperf.err" >&2; exit 1; }
	echo "$phase $path tcp $mbits" >>"$WORK/results"
}

# Both servers answer (the mesh one once nfsd has its address and the tunnel is up).
for target in "underlay 10.97.0.2" "mesh $MESH_B"; do
	read -r path addr <<<"$target"
	ok=""
	for i in $(seq 150); do
		if ina "$WORK/nfsbench" -addr "$addr:2049" -files 1 meta >/dev/null 2>&1; then ok=1; break; fi
		sleep 0.2
	done
	[[ -n $ok ]] || { log "no NFS over the $path:"; ina "$WORK/nfsbench" -addr "$addr:2049" -files 1 meta >&2 || true; cat "$WORK/nfsd.log" >&2; exit 1; }
done

PHASES="full"
[[ $SHAPE_RATE != off ]] && PHASES="full shaped"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
SIZE=$((SIZE_MIB << 20))
for round in $(seq "$ROUNDS"); do
	for phase in $PHASES; do
		if [[ $phase == shaped ]]; then shape on; else shape off; fi
		log "round $round of $ROUNDS, veth $([[ $phase == shaped ]] && echo "shaped to $SHAPE_RATE" || echo "at full speed"): iperf3, $SIZE_MIB MiB write and read (1 and $INFLIGHT in flight), $FILES files; underlay then mesh"
		for target in "underlay 10.97.0.2 5201" "mesh $MESH_B 111"; do
			read -r path addr port <<<"$target"
			tcp "$phase" "$path" "$addr" "$port"
			bench "$phase" "$path" "$addr" write -size "$SIZE"
			bench "$phase" "$path" "$addr" read -size "$SIZE"
			if [[ $INFLIGHT -gt 1 ]]; then
				bench "$phase" "$path" "$addr" write-n -size "$SIZE" -inflight "$INFLIGHT"
				bench "$phase" "$path" "$addr" read-n -size "$SIZE" -inflight "$INFLIGHT"
			fi
			bench "$phase" "$path" "$addr" meta -files "$FILES"
		done
	done
done
shape off
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
for p in "$PID_A" "$PID_B" "$PID_NFSD"; do
	kill -0 "$p" 2>/dev/null || { log "a node or nfsd died during the runs"; tail -30 "$WORK/a.log" "$WORK/b.log" "$WORK/nfsd.log" >&2; exit 1; }
done

# --- table -------------------------------------------------------------------
awk -v mib="$SIZE_MIB" -v files="$FILES" -v rounds="$ROUNDS" -v cpus="$(nproc)" -v lb="$LOAD_BEFORE" -v la="$LOAD_AFTER" \
	-v inflight="$INFLIGHT" -v shaperate="$SHAPE_RATE" -v phases="$PHASES" '
function median(list,    a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	if (n == 0) return 0
	return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
# rate of one run: Mbit/s for tcp, MiB/s for write and read, files/s for meta
function rate(what, v) { if (what == "tcp") return v; if (v <= 0) return 0; return (what == "meta") ? files / v : mib / v }
function ratio(a, b) { return (b > 0) ? a / b : 0 }
{
	r = rate($3, $4)
	all[$1, $2, $3] = all[$1, $2, $3] " " r
	n[$1, $2, $3]++; per[$1, $2, $3, n[$1, $2, $3]] = r
}
END {
	printf "\nnfsd benchmark: NFSv3 (go-nfs-client) over the mesh and over the underlay veth, %d CPUs, %d alternating rounds (medians)\n", cpus, rounds
	nw = split("tcp write read write-n read-n meta", whats, " ")
	if (inflight <= 1) nw = split("tcp write read meta", whats, " ")
	np = split(phases, ph, " ")
	for (q = 1; q <= np; q++) {
		f = ph[q]
		if (f == "full") printf "\nveth at full speed\n"
		else printf "\nveth shaped to %s (tc tbf on both ends)\n", shaperate
		printf "%-10s %12s %12s %12s", "path", "TCP Mbit/s", "write MiB/s", "read MiB/s"
		if (inflight > 1) printf " %14s %14s", "write x" inflight, "read x" inflight
		printf " %13s\n", "meta files/s"
		split("underlay mesh", paths, " ")
		for (i = 1; i <= 2; i++) {
			p = paths[i]
			printf "%-10s", p
			for (k = 1; k <= nw; k++) {
				med[f, p, whats[k]] = median(all[f, p, whats[k]])
				w = (whats[k] ~ /-n$/) ? 15 : (whats[k] == "meta" ? 14 : 13)
				fmt = "%" w "." ((whats[k] == "meta" || whats[k] == "tcp") ? 0 : 1) "f"
				printf fmt, med[f, p, whats[k]]
			}
			printf "\n"
		}
		printf "mesh / underlay:"
		for (k = 1; k <= nw; k++) printf "  %s %.2fx", whats[k], ratio(med[f, "mesh", whats[k]], med[f, "underlay", whats[k]])
		printf "\nNFS / TCP capacity of the path:"
		for (i = 1; i <= 2; i++) {
			p = paths[i]
			printf "  %s", p
			for (k = 2; k <= nw; k++) if (whats[k] != "meta") printf " %s %.2f", whats[k], ratio(med[f, p, whats[k]] * 8.388608, med[f, p, "tcp"])
		}
		printf "\nper round, mesh / underlay:"
		for (j = 1; j <= n[f, "mesh", "write"]; j++) {
			printf "  [%d]", j
			for (k = 2; k <= nw; k++) printf " %.2fx", ratio(per[f, "mesh", whats[k], j], per[f, "underlay", whats[k], j])
		}
		printf "  ("
		for (k = 2; k <= nw; k++) printf "%s%s", whats[k], (k < nw) ? ", " : ")\n"
	}
	printf "\n%d MiB sequential in 1 MiB requests (write-n, read-n: %d in flight), %d files of 100 bytes (create, write, commit, list, remove); TCP: iperf3\n", mib, inflight, files
	printf "load average: %s before the rounds, %s after\n", lb, la
	printf "target: mesh >= 0.8x underlay for sequential write and read\n"
}' "$WORK/results"
