#!/usr/bin/env bash
# Queries per second of tunnelmesh-meshdns (meshdns plugin) beside the same
# CoreDNS binary serving the same names from its hosts plugin, measured with
# dnsperf (Debian package dnsperf) in one run. Prints one table.
#
#   bench/bench.sh                      # from meshdns/ or anywhere
#   NODES=5000 DURATION=20 ROUNDS=3 bench/bench.sh
#
# NODES     nodes in the fake netmap (default 1000)
# DURATION  seconds per dnsperf run (default 10)
# ROUNDS    alternating hosts/meshdns runs (default 2); the table shows the mean
# CLIENTS   dnsperf clients (default 8); THREADS dnsperf threads (default 1)
set -euo pipefail

NODES=${NODES:-1000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-1}

command -v dnsperf >/dev/null || { echo "bench.sh: needs dnsperf (apt-get install -y --no-install-recommends dnsperf)" >&2; exit 2; }
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/meshdns-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

echo "building tunnelmesh-meshdns and fakereg..." >&2
CGO_ENABLED=0 GOWORK=off go build -o "$work/tunnelmesh-meshdns" ./cmd/tunnelmesh-meshdns
GOWORK=off go build -o "$work/fakereg" ./bench/fakereg

"$work/fakereg" -dir "$work" -nodes "$NODES" 2>"$work/fakereg.log" &
pids+=($!)
for _ in $(seq 600); do [ -f "$work/ready" ] && break; sleep 0.1; done
[ -f "$work/ready" ] || { echo "bench.sh: fakereg did not start" >&2; cat "$work/fakereg.log" >&2; exit 1; }

# The same binary twice, no cache and no log in either: the plugins alone.
read -r port_mesh port_hosts <"$work/ports"
cat >"$work/Corefile.meshdns" <<EOC
mesh {
    bind 127.0.0.1
    meshdns {
        credentials $work/dns.credentials
    }
}
EOC
cat >"$work/Corefile.hosts" <<EOC
mesh {
    bind 127.0.0.1
    hosts $work/hosts {
        ttl 30
    }
}
EOC
"$work/tunnelmesh-meshdns" -conf "$work/Corefile.meshdns" -dns.port "$port_mesh" >"$work/meshdns.log" 2>&1 &
pids+=($!)
"$work/tunnelmesh-meshdns" -conf "$work/Corefile.hosts" -dns.port "$port_hosts" >"$work/hosts.log" 2>&1 &
pids+=($!)

last=$(tail -n 1 "$work/queries.txt" | cut -d' ' -f1)
for port in "$port_mesh" "$port_hosts"; do
	for _ in $(seq 300); do
		if [ -n "$(dig @127.0.0.1 -p "$port" +time=1 +tries=1 +short "$last" A 2>/dev/null)" ]; then continue 2; fi
		sleep 0.1
	done
	echo "bench.sh: server on port $port does not answer $last" >&2
	cat "$work/meshdns.log" "$work/hosts.log" >&2
	exit 1
done

# run NAME PORT: one dnsperf run; prints "qps avg_latency_us lost".
run() {
	local out
	out=$(dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries.txt" -l "$DURATION" -c "$CLIENTS" -T "$THREADS" 2>&1)
	echo "$out" >"$work/dnsperf.$1.$(date +%s%N).log"
	local qps lat lost
	qps=$(echo "$out" | awk '/Queries per second:/ {print $4}')
	lat=$(echo "$out" | awk '/Average Latency \(s\):/ {printf "%.0f", $4*1e6}')
	lost=$(echo "$out" | awk '/Queries lost:/ {print $3}')
	[ -n "$qps" ] || { echo "bench.sh: dnsperf failed:" >&2; echo "$out" >&2; exit 1; }
	echo "$qps $lat $lost"
}

results="$work/results"
: >"$results"
for r in $(seq "$ROUNDS"); do
	for name in hosts meshdns; do
		port=$port_hosts; [ "$name" = meshdns ] && port=$port_mesh
		echo "round $r/$ROUNDS: $name (${DURATION}s)..." >&2
		echo "$name $(run "$name" "$port")" >>"$results"
	done
done

printf '\nmeshdns vs hosts: %d names, dnsperf -l %s -c %s -T %s, %s rounds, %s CPUs (%s)\n' \
	"$((NODES + 1))" "$DURATION" "$CLIENTS" "$THREADS" "$ROUNDS" "$(nproc)" "$(date -u +%FT%TZ)"
awk '
	{ n[$1]++; q[$1] += $2; l[$1] += $3; lost[$1] += $4; runs[$1] = runs[$1] sprintf(" %.0f", $2) }
	END {
		printf "%-10s %12s %16s %8s   %s\n", "server", "mean qps", "avg latency us", "lost", "qps per round"
		split("hosts meshdns", order, " ")
		for (i = 1; i <= 2; i++) { s = order[i]
			printf "%-10s %12.0f %16.0f %8d  %s\n", s, q[s]/n[s], l[s]/n[s], lost[s], runs[s] }
		ratio = (q["meshdns"]/n["meshdns"]) / (q["hosts"]/n["hosts"])
		printf "ratio meshdns/hosts: %.2fx (target >= 0.9x: %s)\n", ratio, (ratio >= 0.9 ? "meets target" : "below target")
	}' "$results"
