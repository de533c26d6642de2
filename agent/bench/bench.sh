#!/usr/bin/env bash
# bench.sh: throughput and latency of TunnelMesh against the raw veth and
# wireguard-go, in two network namespaces joined by a veth pair, in one run.
#
#   sudo agent/bench/bench.sh            (from anywhere in the repository)
#
# For every path: iperf3 with 1 stream A->B and B->A (-R) and 4 streams
# A->B, the idle ping RTT (median), and the ping RTT during the 4-stream
# transfer (median and p99: how long a sparse flow waits behind a bulk one,
# i.e. bufferbloat).
#
# Besides the three paths it measures a floor: forwarder/, a TUN<->UDP
# forwarder with no encryption and one blocked OS thread per direction, i.e.
# the cost of the kernel waking a userspace process at every hop, which no
# userspace tunnel (wireguard-go, TunnelMesh) can go below without
# busy-polling.
#
# Needs root, Go, and iproute2. Installs iperf3 and wireguard-tools with
# apt-get when missing, and builds wireguard-go from the Go module proxy.
# Every address lives inside the two namespaces it creates; everything is
# removed on exit. Environment: BENCH_SECONDS (iperf3 -t, default 5),
# BENCH_PINGS (pings for the idle RTT median, default 200), BENCH_ROUNDS
# (alternating rounds of wireguard-go and TunnelMesh, default 3: the table
# shows each one's median and every round's ratio), BENCH_BUSY_POLL=1
# (also measure the forwarder busy-polling: a CPU per side spinning),
# BENCH_NODE_FLAGS (more flags for both TunnelMesh nodes, e.g. "--procs 2"),
# BENCH_BASE_REV (a git revision: TunnelMesh built at that revision is
# measured too, as "tunnelmesh@base", in the same alternating rounds, on a
# mesh of its own; the table adds its ratios: a change against the tree
# before it, in one run).
set -euo pipefail

SECS=${BENCH_SECONDS:-5}
PINGS=${BENCH_PINGS:-200}
ROUNDS=${BENCH_ROUNDS:-3}

if [[ $(id -u) -ne 0 ]]; then
	echo "bench.sh: needs root (network namespaces, TUN devices)" >&2
	exit 1
fi

HERE=$(cd "$(dirname "$0")" && pwd)
AGENT=$(cd "$HERE/.." && pwd)
WORK=$(mktemp -d /tmp/tunnelmesh-bench.XXXXXX)
ID=$$
NA=tmbenchA$ID
NB=tmbenchB$ID
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

# --- tools -----------------------------------------------------------------
missing=()
command -v iperf3 >/dev/null || missing+=(iperf3)
command -v wg >/dev/null || missing+=(wireguard-tools)
command -v ping >/dev/null || missing+=(iputils-ping)
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

log "building tunnelmesh, the forwarder and wireguard-go"
(cd "$AGENT" && CGO_ENABLED=0 go build -o "$WORK/tunnelmesh" ./cmd/tunnelmesh)
(cd "$AGENT" && CGO_ENABLED=0 go build -o "$WORK/forwarder" ./bench/forwarder)
if [[ -n ${BENCH_BASE_REV:-} ]]; then
	log "building tunnelmesh at $BENCH_BASE_REV"
	mkdir "$WORK/base-src"
	git -C "$AGENT/.." archive "$BENCH_BASE_REV" | tar -x -C "$WORK/base-src"
	(cd "$WORK/base-src/agent" && CGO_ENABLED=0 go build -o "$WORK/tunnelmesh-base" ./cmd/tunnelmesh)
fi
WGVER=$(cd "$AGENT" && go list -m -f '{{.Version}}' golang.zx2c4.com/wireguard)
(cd "$WORK" && GOBIN="$WORK" GOFLAGS=-mod=mod GOWORK=off go install "golang.zx2c4.com/wireguard@$WGVER")
WGGO="$WORK/wireguard"

# --- namespaces --------------------------------------------------------------
ip netns add "$NA"
ip netns add "$NB"
ip -n "$NA" link add veth0 type veth peer name veth0 netns "$NB"
ip -n "$NA" addr add 10.98.0.1/24 dev veth0
ip -n "$NB" addr add 10.98.0.2/24 dev veth0
for ns in "$NA" "$NB"; do
	ip -n "$ns" link set lo up
	ip -n "$ns" link set veth0 up
done

ina() { ip netns exec "$NA" "$@"; }
inb() { ip netns exec "$NB" "$@"; }

# iperf3 server in B for the whole run.
inb iperf3 -s -D -I "$WORK/iperf3.pid" >/dev/null
sleep 0.3
PIDS+=("$(cat "$WORK/iperf3.pid")")

# throughput DST STREAMS [-R] -> Mbit/s (receiver side); 0 when iperf3 fails.
# -R: B sends to A (the reverse direction).
# A failed run (e.g. the server still busy with the previous one) is tried
# once more; iperf3's complaint goes to the log.
throughput() {
	local v try
	for try in 1 2; do
		v=$({ ina iperf3 -c "$1" -t "$SECS" -P "$2" ${3:-} -f m 2>>"$WORK/iperf3.err" || true; } |
			awk '/receiver/ { v = $(NF-2) } END { if (v == "") v = "0"; print v }')
		[[ $v != 0 ]] && break
		log "iperf3 -c $1 -P $2 ${3:-} failed (try $try): $(tail -1 "$WORK/iperf3.err" 2>/dev/null)"
		sleep 0.5
	done
	echo "$v"
}

# rtt_stats FILE -> "p50 p99" in microseconds of the ping replies in FILE
# ("nan nan" when there are none). p99 is the nearest rank.
rtt_stats() {
	sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$1" | sort -g |
		awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan nan"; exit }
			m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2
			r = int(NR * 0.99 + 0.999999); if (r > NR) r = NR
			printf "%.0f %.0f\n", m * 1000, a[r] * 1000 }'
}

# rtt_idle DST -> median microseconds with nothing else running
rtt_idle() {
	{ ina ping -n -c "$PINGS" -i 0.005 -W 1 "$1" 2>/dev/null || true; } >"$WORK/ping.idle"
	rtt_stats "$WORK/ping.idle" | cut -d' ' -f1
}

# loaded DST -> "Mbit/s p50 p99": the 4-stream iperf3 A->B and, while it runs
# (after a ramp of 0.3 s), pings every 10 ms along the same path: the
# latency a sparse flow sees behind a bulk transfer. A lost ping counts as
# the 1 s timeout in the percentiles.
loaded() {
	local n=$(((SECS * 1000 - 500) / 10))
	((n >= 20)) || n=20
	throughput "$1" 4 >"$WORK/t4" &
	local tp=$!
	sleep 0.3
	{ ina ping -n -c "$n" -i 0.01 -W 1 "$1" 2>/dev/null || true; } >"$WORK/ping.loaded"
	local got
	got=$(grep -c 'time=' "$WORK/ping.loaded" || true)
	for ((i = got; i < n; i++)); do echo "time=1000 ms" >>"$WORK/ping.loaded"; done
	wait "$tp"
	echo "$(cat "$WORK/t4") $(rtt_stats "$WORK/ping.loaded")"
}

measure() { # NAME DST
	ina ping -n -c 3 -i 0.2 -W 2 "$2" >/dev/null 2>&1 || true
	log "measuring $1 ($SECS s x 3 + $PINGS pings)"
	local t1 t1r load rtt
	t1=$(throughput "$2" 1)
	t1r=$(throughput "$2" 1 -R)
	load=$(loaded "$2")
	rtt=$(rtt_idle "$2")
	# NAME 1-stream 1-stream-reverse 4-streams idle-p50 loaded-p50 loaded-p99
	set -- "$1" "$t1" "$t1r" $load
	echo "$1 $2 $3 $4 $rtt $5 $6" >>"$WORK/results"
}

# --- raw veth ----------------------------------------------------------------
measure "raw-veth" 10.98.0.2

# --- floor: forwarder, no encryption -------------------------------------------
ip netns exec "$NA" "$WORK/forwarder" -dev fwd0 -addr 10.201.0.1/24 -listen 10.98.0.1:7001 -peer 10.98.0.2:7001 >"$WORK/fwd-a.log" 2>&1 &
PIDS+=($!)
FWD_A=$!
ip netns exec "$NB" "$WORK/forwarder" -dev fwd0 -addr 10.201.0.2/24 -listen 10.98.0.2:7001 -peer 10.98.0.1:7001 >"$WORK/fwd-b.log" 2>&1 &
PIDS+=($!)
FWD_B=$!
for i in $(seq 50); do
	ina ping -n -c 1 -W 0.2 10.201.0.2 >/dev/null 2>&1 && break
	sleep 0.1
done
measure "floor" 10.201.0.2
kill "$FWD_A" "$FWD_B" 2>/dev/null || true
if [[ ${BENCH_BUSY_POLL:-} == 1 ]]; then
	sleep 0.3
	ip netns exec "$NA" "$WORK/forwarder" -busy-poll -dev fwd1 -addr 10.202.0.1/24 -listen 10.98.0.1:7002 -peer 10.98.0.2:7002 >"$WORK/fwd-a.log" 2>&1 &
	PIDS+=($!)
	FWD_A=$!
	ip netns exec "$NB" "$WORK/forwarder" -busy-poll -dev fwd1 -addr 10.202.0.2/24 -listen 10.98.0.2:7002 -peer 10.98.0.1:7002 >"$WORK/fwd-b.log" 2>&1 &
	PIDS+=($!)
	FWD_B=$!
	for i in $(seq 50); do
		ina ping -n -c 1 -W 0.2 10.202.0.2 >/dev/null 2>&1 && break
		sleep 0.1
	done
	measure "floor-busy" 10.202.0.2
	kill "$FWD_A" "$FWD_B" 2>/dev/null || true
fi

# --- wireguard-go ------------------------------------------------------------
umask 077
wg genkey >"$WORK/wga.key"
wg genkey >"$WORK/wgb.key"
WGA_PUB=$(wg pubkey <"$WORK/wga.key")
WGB_PUB=$(wg pubkey <"$WORK/wgb.key")
# The UAPI sockets (/var/run/wireguard/IFNAME.sock) are not per namespace:
# each side needs its own interface name.
WGA=wga$ID
WGB=wgb$ID
WG_PROCESS_FOREGROUND=1 ip netns exec "$NA" "$WGGO" "$WGA" >"$WORK/wg-a.log" 2>&1 &
PIDS+=($!)
WG_PROCESS_FOREGROUND=1 ip netns exec "$NB" "$WGGO" "$WGB" >"$WORK/wg-b.log" 2>&1 &
PIDS+=($!)
for i in $(seq 50); do
	[[ -S /var/run/wireguard/$WGA.sock && -S /var/run/wireguard/$WGB.sock ]] && break
	sleep 0.1
done
ina wg set "$WGA" private-key "$WORK/wga.key" listen-port 51820 \
	peer "$WGB_PUB" allowed-ips 10.200.0.2/32 endpoint 10.98.0.2:51820
inb wg set "$WGB" private-key "$WORK/wgb.key" listen-port 51820 \
	peer "$WGA_PUB" allowed-ips 10.200.0.1/32 endpoint 10.98.0.1:51820
ina ip addr add 10.200.0.1/24 dev "$WGA"
inb ip addr add 10.200.0.2/24 dev "$WGB"
ina ip link set "$WGA" mtu 1420 up
inb ip link set "$WGB" mtu 1420 up
# wireguard-go stays up, idle (no keepalives), while TunnelMesh is measured:
# the rounds alternate between the two.

# --- TunnelMesh --------------------------------------------------------------
# The packet filter denies by default: the bench mesh allows everything.
cat >"$WORK/allow-all.yaml" <<POLICY
rules:
  - {name: all, from: "*", to: "*", proto: any}
POLICY
# tm_mesh BIN TAG PORT CIDR IFACE METRICS: a coordinator (in A, on PORT) and
# two nodes (interface IFACE, metrics on 127.0.0.1:METRICS) of BIN; sets
# TM_IP (node B's mesh address) and TM_PID (node A's process).
tm_mesh() {
	local bin=$1 tag=$2 port=$3 cidr=$4 iface=$5 metrics=$6
	cat >"$WORK/coordinator$tag.yaml" <<CFG
listen: 10.98.0.1:$port
data_dir: $WORK/coord$tag
mesh_cidr: $cidr
stun_listen: "off"
log_level: warn
policy_file: $WORK/allow-all.yaml
CFG
	# Long-running processes are started with ip netns exec directly (not
	# through a shell function), so that $! is the process itself.
	ip netns exec "$NA" "$bin" coordinator --config "$WORK/coordinator$tag.yaml" >"$WORK/coord$tag.log" 2>&1 &
	PIDS+=($!)
	local token="" i peers
	for i in $(seq 100); do
		token=$(ina "$bin" admin --config "$WORK/coordinator$tag.yaml" tokens create --reusable 2>/dev/null) && break
		sleep 0.1
	done
	[[ -n $token ]] || { log "coordinator$tag did not start:"; cat "$WORK/coord$tag.log" >&2; exit 1; }
	ip netns exec "$NA" "$bin" join --coordinator "https://10.98.0.1:$port" --token "$token" --name "bench-a$tag" \
		--state-dir "$WORK/a$tag" --interface "$iface" --dns=false --log-level warn --metrics-listen "127.0.0.1:$metrics" ${BENCH_NODE_FLAGS:-} >"$WORK/a$tag.log" 2>&1 &
	PIDS+=($!)
	TM_PID=$!
	ip netns exec "$NB" "$bin" join --coordinator "https://10.98.0.1:$port" --token "$token" --name "bench-b$tag" \
		--state-dir "$WORK/b$tag" --interface "$iface" --dns=false --log-level warn --metrics-listen "127.0.0.1:$metrics" ${BENCH_NODE_FLAGS:-} >"$WORK/b$tag.log" 2>&1 &
	PIDS+=($!)
	TM_IP=""
	for i in $(seq 100); do
		TM_IP=$("$bin" status --json --state-dir "$WORK/b$tag" 2>/dev/null | sed -n 's/^  "ip": "\(.*\)",$/\1/p') || true
		peers=$("$bin" status --json --state-dir "$WORK/a$tag" 2>/dev/null | grep -c "\"name\": \"bench-b$tag\"" || true)
		[[ -n $TM_IP && $peers == 1 ]] && break
		sleep 0.1
	done
	[[ -n $TM_IP ]] || { log "tunnelmesh$tag nodes did not come up:"; cat "$WORK/a$tag.log" "$WORK/b$tag.log" >&2; exit 1; }
}
tm_mesh "$WORK/tunnelmesh" "" 8443 100.96.0.0/16 tmbench0 9101
TM_B=$TM_IP
PID_A=$TM_PID
if [[ -n ${BENCH_BASE_REV:-} ]]; then
	tm_mesh "$WORK/tunnelmesh-base" "-base" 8444 100.97.0.0/16 tmbase0 9102
	TM_BASE_B=$TM_IP
	PID_BASE=$TM_PID
fi
sleep 2
[[ $(readlink "/proc/$PID_A/exe") == "$WORK/tunnelmesh" ]] || { log "pid $PID_A is not the node"; exit 1; }
RSS_IDLE=$(awk '/VmRSS/ { print $2 }' "/proc/$PID_A/status")
RSS_BASE=""
[[ -z ${PID_BASE:-} ]] || RSS_BASE=$(awk '/VmRSS/ { print $2 }' "/proc/$PID_BASE/status")
for round in $(seq "$ROUNDS"); do
	log "round $round of $ROUNDS"
	measure "wireguard-go" 10.200.0.2
	measure "tunnelmesh" "$TM_B"
	[[ -z ${BENCH_BASE_REV:-} ]] || measure "tunnelmesh@base" "$TM_BASE_B"
done
sleep 2
if ! kill -0 "$PID_A" 2>/dev/null; then
	log "the tunnelmesh node died during the runs; its log:"
	tail -50 "$WORK/a.log" >&2
	exit 1
fi
RSS_AFTER=$(awk '/VmRSS/ { print $2 }' "/proc/$PID_A/status")
# The peer queues' drops and sojourn times on both nodes, over all the runs.
QUEUES=""
for side in A B; do
	ns=$NA
	[[ $side == B ]] && ns=$NB
	q=$({ ip netns exec "$ns" curl -s --max-time 5 http://127.0.0.1:9101/metrics || true; } | awk -v side="$side" '
		/^tunnelmesh_agent_queue_drops_total/ { match($0, /direction="[a-z]+"/); d = substr($0, RSTART + 11, 2)
			match($0, /discipline="[a-z]+"/); k = substr($0, RSTART + 12, RLENGTH - 13); drops[d " " k] += $NF }
		/^tunnelmesh_agent_queue_sojourn_seconds_(sum|count)/ { match($0, /direction="[a-z]+"/); d = substr($0, RSTART + 11, 2)
			if ($1 ~ /_sum/) sum[d] += $NF; else cnt[d] += $NF }
		END { for (d in cnt) printf "%s %s: %d packets, mean sojourn %.0f us, codel drops %d, limit drops %d; ", side, d, cnt[d],
			(cnt[d] > 0) ? sum[d] / cnt[d] * 1e6 : 0, drops[d " codel"], drops[d " limit"] }')
	QUEUES="$QUEUES$q"
done

# --- table -------------------------------------------------------------------
# results: NAME 1-stream 1-stream-reverse 4-streams idle-p50 loaded-p50 loaded-p99
awk -v queues="$QUEUES" -v secs="$SECS" -v pings="$PINGS" -v rounds="$ROUNDS" -v rss_idle="$RSS_IDLE" -v rss_after="$RSS_AFTER" -v rss_base="$RSS_BASE" -v cpus="$(nproc)" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" '
function median(list,    a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	if (n == 0) return "nan"
	return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
function ratio(a, b) { return (b > 0) ? a / b : 0 }
{
	if (!($1 in seen)) { seen[$1] = 1; order[++names] = $1 }
	n[$1]++
	for (c = 2; c <= 7; c++) { col[$1, c] = col[$1, c] " " $c; r[$1, c, n[$1]] = $c }
}
END {
	printf "\nTunnelMesh benchmark: two namespaces over a veth pair, %d CPUs (load average %s at the end), iperf3 -t %d, %d idle pings, %d alternating rounds (medians)\n\n", cpus, load, secs, pings, rounds
	printf "%-16s %12s %12s %12s %12s %12s %12s\n", "path", "1-stream", "1-stream-B>A", "4-streams", "idle-p50", "loaded-p50", "loaded-p99"
	printf "%-16s %12s %12s %12s %12s %12s %12s\n", "", "Mbit/s", "Mbit/s", "Mbit/s", "us", "us", "us"
	for (i = 1; i <= names; i++) {
		k = order[i]
		line = sprintf("%-16s", k)
		for (c = 2; c <= 7; c++) { m[k, c] = median(col[k, c]); line = line sprintf(" %12.0f", m[k, c]) }
		print line
	}
	printf "\n"
	nb = split("raw-veth wireguard-go", base, " ")
	if ("tunnelmesh@base" in seen) base[++nb] = "tunnelmesh@base"
	for (i = 1; i <= nb; i++) {
		b = base[i]
		printf "tunnelmesh / %-15s 1 stream %.2fx   B>A %.2fx   4 streams %.2fx   idle RTT %+d us   loaded p50 %+d us  p99 %+d us\n", b,
			ratio(m["tunnelmesh", 2], m[b, 2]), ratio(m["tunnelmesh", 3], m[b, 3]), ratio(m["tunnelmesh", 4], m[b, 4]),
			m["tunnelmesh", 5] - m[b, 5], m["tunnelmesh", 6] - m[b, 6], m["tunnelmesh", 7] - m[b, 7]
	}
	if (rounds > 1) {
		printf "per round, tunnelmesh / wireguard-go (1 stream, B>A, 4 streams; loaded p99 tunnelmesh / wireguard-go us):\n"
		for (j = 1; j <= n["tunnelmesh"]; j++) {
			printf "  [%d] %.2fx %.2fx %.2fx   %d / %d\n", j,
				ratio(r["tunnelmesh", 2, j], r["wireguard-go", 2, j]), ratio(r["tunnelmesh", 3, j], r["wireguard-go", 3, j]),
				ratio(r["tunnelmesh", 4, j], r["wireguard-go", 4, j]), r["tunnelmesh", 7, j], r["wireguard-go", 7, j]
		}
		if ("tunnelmesh@base" in seen) {
			printf "per round, tunnelmesh / tunnelmesh@base (1 stream, B>A, 4 streams; loaded p99 tunnelmesh / tunnelmesh@base us):\n"
			for (j = 1; j <= n["tunnelmesh"]; j++) {
				printf "  [%d] %.2fx %.2fx %.2fx   %d / %d\n", j,
					ratio(r["tunnelmesh", 2, j], r["tunnelmesh@base", 2, j]), ratio(r["tunnelmesh", 3, j], r["tunnelmesh@base", 3, j]),
					ratio(r["tunnelmesh", 4, j], r["tunnelmesh@base", 4, j]), r["tunnelmesh", 7, j], r["tunnelmesh@base", 7, j]
			}
		}
	}
	printf "floor (TUN<->UDP forwarder, no crypto, one thread sleeping in poll): idle RTT %+d us over raw veth; tunnelmesh %+d us over the floor\n", m["floor", 5] - m["raw-veth", 5], m["tunnelmesh", 5] - m["floor", 5]
	if (("floor-busy", 5) in m) printf "floor busy-polling (a CPU per side spinning): idle RTT %+d us over raw veth\n", m["floor-busy", 5] - m["raw-veth", 5]
	printf "tunnelmesh node RSS: %.1f MB idle, %.1f MB after the runs\n", rss_idle / 1024, rss_after / 1024
	if (rss_base != "") printf "tunnelmesh@base node RSS: %.1f MB idle\n", rss_base / 1024
	printf "tunnelmesh peer queues (node A, node B; tx, rx): %s\n", queues
	printf "targets: 1 stream, B>A and 4 streams >= 1.1x wireguard-go; loaded RTT p50 <= 3000 us, p99 <= 10000 us; idle RTT <= floor + 50 us; idle RSS < 30 MB\n"
}' "$WORK/results"
