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
# The client is nfsbench/ (go-nfs-client, one request in flight) from namespace A,
# for both paths. Workloads: sequential write of SIZE_MIB MiB in 1 MiB WRITEs
# (FILE_SYNC) then COMMIT, sequential read of it back in 1 MiB READs, and a metadata
# run: BENCH_FILES (default 10000) files of 100 bytes created, written, listed and
# removed in a new directory. The rounds alternate underlay and mesh (BENCH_ROUNDS,
# default 3); the table shows medians and every round's mesh/underlay ratio.
#
# Needs root, Go and iproute2. Every address lives inside the two namespaces it
# creates; everything is removed on exit.
set -euo pipefail

SIZE_MIB=${1:-${BENCH_SIZE_MIB:-1024}}
FILES=${BENCH_FILES:-10000}
ROUNDS=${BENCH_ROUNDS:-3}
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

# bench PATH ADDR WORKLOAD ARGS...: one timed run, appended to results as
# "PATH WORKLOAD SECONDS"; the run fails the script.
bench() {
	local path=$1 addr=$2 what=$3 secs
	shift 3
	if ! secs=$(ina "$WORK/nfsbench" -addr "$addr:2049" "$@" "$what" 2>"$WORK/nfsbench.err"); then
		log "$what over the $path failed:"
		cat "$WORK/nfsbench.err" >&2
		tail -20 "$WORK/nfsd.log" "$WORK/underlay.log" >&2
		exit 1
	fi
	echo "$path $what $secs" >>"$WORK/results"
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

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
SIZE=$((SIZE_MIB << 20))
for round in $(seq "$ROUNDS"); do
	log "round $round of $ROUNDS: $SIZE_MIB MiB write and read, $FILES files, underlay then mesh"
	for target in "underlay 10.97.0.2" "mesh $MESH_B"; do
		read -r path addr <<<"$target"
		bench "$path" "$addr" write -size "$SIZE"
		bench "$path" "$addr" read -size "$SIZE"
		bench "$path" "$addr" meta -files "$FILES"
	done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
for p in "$PID_A" "$PID_B" "$PID_NFSD"; do
	kill -0 "$p" 2>/dev/null || { log "a node or nfsd died during the runs"; tail -30 "$WORK/a.log" "$WORK/b.log" "$WORK/nfsd.log" >&2; exit 1; }
done

# --- table -------------------------------------------------------------------
awk -v mib="$SIZE_MIB" -v files="$FILES" -v rounds="$ROUNDS" -v cpus="$(nproc)" -v lb="$LOAD_BEFORE" -v la="$LOAD_AFTER" '
function median(list,    a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	if (n == 0) return 0
	return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
# rate of one run: MiB/s for write and read, files/s for meta
function rate(what, secs) { if (secs <= 0) return 0; return (what == "meta") ? files / secs : mib / secs }
{
	r = rate($2, $3)
	all[$1, $2] = all[$1, $2] " " r
	n[$1, $2]++; per[$1, $2, n[$1, $2]] = r
}
END {
	printf "\nnfsd benchmark: NFSv3 (go-nfs-client, one request in flight) over the mesh and over the underlay veth, %d CPUs, %d alternating rounds (medians)\n\n", cpus, rounds
	printf "%-10s %16s %16s %18s\n", "path", "write MiB/s", "read MiB/s", "meta files/s"
	split("underlay mesh", paths, " ")
	split("write read meta", whats, " ")
	for (i = 1; i <= 2; i++) {
		p = paths[i]
		for (k = 1; k <= 3; k++) med[p, whats[k]] = median(all[p, whats[k]])
		printf "%-10s %16.1f %16.1f %18.0f\n", p, med[p, "write"], med[p, "read"], med[p, "meta"]
	}
	printf "\n%d MiB sequential, %d files of 100 bytes (create, write, commit, list, remove)\n", mib, files
	printf "mesh / underlay:        write %.2fx   read %.2fx   meta %.2fx\n", \
		(med["underlay", "write"] > 0) ? med["mesh", "write"] / med["underlay", "write"] : 0, \
		(med["underlay", "read"] > 0) ? med["mesh", "read"] / med["underlay", "read"] : 0, \
		(med["underlay", "meta"] > 0) ? med["mesh", "meta"] / med["underlay", "meta"] : 0
	printf "per round, mesh / underlay:"
	for (j = 1; j <= n["mesh", "write"]; j++) {
		printf "  [%d]", j
		for (k = 1; k <= 3; k++) { u = per["underlay", whats[k], j]; printf " %.2fx", (u > 0) ? per["mesh", whats[k], j] / u : 0 }
	}
	printf "  (write, read, meta)\n"
	printf "load average: %s before the rounds, %s after\n", lb, la
	printf "target: mesh >= 0.8x underlay for sequential write and read\n"
}' "$WORK/results"
