#!/usr/bin/env bash
# storage/bench: S3 PUT and GET (64 MiB objects and many 4 KiB ones) from a
# node to one SeaweedFS over the mesh and over the underlay, same run,
# alternating rounds; prints a table (MB/s and the mesh/underlay ratio).
# Root (network namespaces); needs storage/scripts/build-weed.sh's binary.
#
#   storage/bench/run.sh            # 3 rounds
#   ROUNDS=5 storage/bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../agent"
"../storage/scripts/build-weed.sh" >/dev/null
TUNNELMESH_STORAGE_BENCH=1 TUNNELMESH_STORAGE_BENCH_ROUNDS="${ROUNDS:-3}" \
  go test -count=1 -v -timeout 60m -run 'TestStorageBench$' ./internal/e2e/ | grep -E '^\s+(path|mesh|underlay|mesh/under)\b|^(ok|FAIL|---)'
