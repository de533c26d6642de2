#!/usr/bin/env bash
# bench.sh: throughput and latency of TunnelMesh against the raw veth and
# wireguard-go, in two network namespaces joined by a veth pair, in one run.
#
#   sudo agent/bench/bench.sh            (from anywhere in the repository)
#
# Besides the three paths it measures the ping RTT of a floor: forwarder/,
# a TUN<->UDP forwarder with no encryption and one blocked OS thread per
# direction, i.e. the cost of the kernel waking a userspace process at every
# hop, which no userspace tunnel (wireguard-go, TunnelMesh) can go below
# without busy-polling.
#
# Needs root, Go, and iproute2. Installs iperf3 and wireguard-tools with
# apt-get when missing, and builds wireguard-go from the Go module proxy.
# Every address lives inside the two namespaces it creates; everything is
# removed on exit. Environment: BENCH_SECONDS (iperf3 -t, default 5),
# BENCH_PINGS (pings for the RTT median, default 200), BENCH_ROUNDS
# (alternating rounds of wireguard-go and TunnelMesh, default 3: the table
# shows each one's median and every round's ratio), BENCH_BUSY_POLL=1
# (also measure the forwarder busy-polling: a CPU per side spinning).
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

# throughput DST STREAMS -> Mbit/s (receiver side); 0 when iperf3 fails
throughput() {
	{ ina iperf3 -c "$1" -t "$SECS" -P "$2" -f m 2>>"$WORK/iperf3.err" || true; } |
		awk '/receiver/ { v = $(NF-2) } END { if (v == "") v = "0"; print v }'
}

# rtt_median DST -> microseconds
rtt_median() {
	{ ina ping -n -c "$PINGS" -i 0.005 -W 1 "$1" 2>/dev/null || true; } |
		sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | sort -g |
		awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
			m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.0f\n", m * 1000 }'
}

measure() { # NAME DST [rtt-only]
	ina ping -n -c 3 -i 0.2 -W 2 "$2" >/dev/null 2>&1 || true
	local t1=- t4=- rtt
	if [[ -z ${3:-} ]]; then
		log "measuring $1 ($SECS s x 2 + $PINGS pings)"
		t1=$(throughput "$2" 1)
		t4=$(throughput "$2" 4)
	else
		log "measuring $1 ($PINGS pings)"
	fi
	rtt=$(rtt_median "$2")
	echo "$1 $t1 $t4 $rtt" >>"$WORK/results"
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
measure "floor" 10.201.0.2 rtt-only
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
	measure "floor-busy" 10.202.0.2 rtt-only
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
cat >"$WORK/coordinator.yaml" <<CFG
listen: 10.98.0.1:8443
data_dir: $WORK/coord
mesh_cidr: 100.96.0.0/16
stun_listen: "off"
log_level: warn
policy_file: $WORK/allow-all.yaml
CFG
# Long-running processes are started with ip netns exec directly (not through
# a shell function), so that $! is the process itself.
ip netns exec "$NA" "$WORK/tunnelmesh" coordinator --config "$WORK/coordinator.yaml" >"$WORK/coord.log" 2>&1 &
PIDS+=($!)
TOKEN=""
for i in $(seq 100); do
	TOKEN=$(ina "$WORK/tunnelmesh" admin --config "$WORK/coordinator.yaml" tokens create --reusable 2>/dev/null) && break
	sleep 0.1
done
[[ -n $TOKEN ]] || { log "coordinator did not start:"; cat "$WORK/coord.log" >&2; exit 1; }
ip netns exec "$NA" "$WORK/tunnelmesh" join --coordinator https://10.98.0.1:8443 --token "$TOKEN" --name bench-a \
	--state-dir "$WORK/a" --interface tmbench0 --dns=false --log-level warn >"$WORK/a.log" 2>&1 &
PIDS+=($!)
PID_A=$!
ip netns exec "$NB" "$WORK/tunnelmesh" join --coordinator https://10.98.0.1:8443 --token "$TOKEN" --name bench-b \
	--state-dir "$WORK/b" --interface tmbench0 --dns=false --log-level warn >"$WORK/b.log" 2>&1 &
PIDS+=($!)
TM_B=""
for i in $(seq 100); do
	TM_B=$("$WORK/tunnelmesh" status --json --state-dir "$WORK/b" 2>/dev/null | sed -n 's/^  "ip": "\(.*\)",$/\1/p') || true
	peers=$("$WORK/tunnelmesh" status --json --state-dir "$WORK/a" 2>/dev/null | grep -c '"name": "bench-b"' || true)
	[[ -n $TM_B && $peers == 1 ]] && break
	sleep 0.1
done
[[ -n $TM_B ]] || { log "tunnelmesh nodes did not come up:"; cat "$WORK/a.log" "$WORK/b.log" >&2; exit 1; }
sleep 2
[[ $(readlink "/proc/$PID_A/exe") == "$WORK/tunnelmesh" ]] || { log "pid $PID_A is not the node"; exit 1; }
RSS_IDLE=$(awk '/VmRSS/ { print $2 }' "/proc/$PID_A/status")
for round in $(seq "$ROUNDS"); do
	log "round $round of $ROUNDS"
	measure "wireguard-go" 10.200.0.2
	measure "tunnelmesh" "$TM_B"
done
sleep 2
if ! kill -0 "$PID_A" 2>/dev/null; then
	log "the tunnelmesh node died during the runs; its log:"
	tail -50 "$WORK/a.log" >&2
	exit 1
fi
RSS_AFTER=$(awk '/VmRSS/ { print $2 }' "/proc/$PID_A/status")

# --- table -------------------------------------------------------------------
awk -v secs="$SECS" -v pings="$PINGS" -v rounds="$ROUNDS" -v rss_idle="$RSS_IDLE" -v rss_after="$RSS_AFTER" -v cpus="$(nproc)" '
function median(list,    a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	if (n == 0) return "nan"
	return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{
	if (!($1 in seen)) { seen[$1] = 1; order[++names] = $1 }
	t1s[$1] = t1s[$1] " " $2; t4s[$1] = t4s[$1] " " $3; rtts[$1] = rtts[$1] " " $4
	n[$1]++; r1[$1, n[$1]] = $2; r4[$1, n[$1]] = $3; rr[$1, n[$1]] = $4
}
END {
	printf "\nTunnelMesh benchmark: two namespaces over a veth pair, %d CPUs, iperf3 -t %d, %d pings, %d alternating rounds (medians)\n\n", cpus, secs, pings, rounds
	printf "%-14s %16s %16s %16s\n", "path", "1 stream Mbit/s", "4 streams Mbit/s", "ping median us"
	for (i = 1; i <= names; i++) {
		k = order[i]
		if (t1s[k] ~ /-/) { t1[k] = "-"; t4[k] = "-" } else { t1[k] = median(t1s[k]); t4[k] = median(t4s[k]) }
		rtt[k] = median(rtts[k])
		printf "%-14s %16s %16s %16s\n", k, (t1[k] == "-") ? "-" : sprintf("%.0f", t1[k]), (t4[k] == "-") ? "-" : sprintf("%.0f", t4[k]), sprintf("%.0f", rtt[k])
	}
	printf "\n"
	split("raw-veth wireguard-go", base, " ")
	for (i = 1; i <= 2; i++) {
		b = base[i]
		q1 = (t1[b] > 0) ? t1["tunnelmesh"] / t1[b] : 0
		q4 = (t4[b] > 0) ? t4["tunnelmesh"] / t4[b] : 0
		printf "tunnelmesh / %-13s 1 stream %.2fx   4 streams %.2fx   RTT %+d us\n", b, q1, q4, rtt["tunnelmesh"] - rtt[b]
	}
	if (rounds > 1) {
		printf "per round, tunnelmesh / wireguard-go:"
		for (j = 1; j <= n["tunnelmesh"]; j++) {
			w1 = r1["wireguard-go", j]; w4 = r4["wireguard-go", j]
			printf "  [%d] %.2fx %.2fx %+d us", j, (w1 > 0) ? r1["tunnelmesh", j] / w1 : 0, (w4 > 0) ? r4["tunnelmesh", j] / w4 : 0, rr["tunnelmesh", j] - rr["wireguard-go", j]
		}
		printf "  (1 stream, 4 streams, RTT)\n"
	}
	printf "floor (TUN<->UDP forwarder, no crypto, one thread sleeping in poll): RTT %+d us over raw veth\n", rtt["floor"] - rtt["raw-veth"]
	if ("floor-busy" in rtt) printf "floor busy-polling (a CPU per side spinning): RTT %+d us over raw veth\n", rtt["floor-busy"] - rtt["raw-veth"]
	printf "tunnelmesh node RSS: %.1f MB idle, %.1f MB after the runs\n", rss_idle / 1024, rss_after / 1024
	printf "targets: 1 stream >= 1.0x wireguard-go; RTT over raw veth <= +50 us; idle RSS < 30 MB\n"
}' "$WORK/results"
