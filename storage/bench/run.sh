#!/usr/bin/env bash
# storage/bench: S3 PUT and GET (64 MiB objects and many 4 KiB ones) from a
# node to one SeaweedFS over the mesh and over the underlay, same run,
# alternating rounds, with iperf3's TCP throughput over both paths beside
# them; each round on the bare veth pair and with both veths shaped to RATE
# (tc tbf). Prints a table (MB/s and the mesh/underlay ratio) and the load
# average. Root (network namespaces); needs storage/scripts/build-weed.sh's
# binary and iperf3.
#
#   storage/bench/run.sh                  # 3 rounds, shaped to 1gbit
#   ROUNDS=5 RATE=2500mbit storage/bench/run.sh
#   RATE=off storage/bench/run.sh         # the bare veth only
set -euo pipefail
cd "$(dirname "$0")/../../agent"
"../storage/scripts/build-weed.sh" >/dev/null
TUNNELMESH_STORAGE_BENCH=1 TUNNELMESH_STORAGE_BENCH_ROUNDS="${ROUNDS:-3}" TUNNELMESH_STORAGE_BENCH_RATE="${RATE:-1gbit}" \
  go test -count=1 -v -timeout 90m -run 'TestStorageBench$' ./internal/e2e/ | grep -E '^\s+(\||MB/s)|^(ok|FAIL|---)'
