#!/usr/bin/env bash
# Run Compose on the TunnelMesh demo (compose/docker-compose.yml) with whichever
# Compose this machine has: `docker compose` (v2) or `docker-compose` (v1.29).
#
#   scripts/compose.sh up -d
#   scripts/compose.sh exec node1 tunnelmesh status
#   scripts/compose.sh down -v          # -v also removes the volumes (mesh state)
#   COMPOSE_PROFILES= scripts/compose.sh up -d   # without the monitoring profile
#   COMPOSE_PROFILES=monitoring,storage-cluster scripts/compose.sh up -d   # three storage nodes, one cluster
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
file="$root/compose/docker-compose.yml"
# Every profile of the demo is on unless COMPOSE_PROFILES says otherwise
# (COMPOSE_PROFILES= for the mesh alone).
export COMPOSE_PROFILES="${COMPOSE_PROFILES-monitoring}"
# The storage-cluster profile makes store1 one of three cluster nodes.
case ",$COMPOSE_PROFILES," in
*,storage-cluster,*) export TUNNELMESH_STORAGE_CONFIG="${TUNNELMESH_STORAGE_CONFIG:-storage-cluster.yaml}" ;;
esac
if docker compose version >/dev/null 2>&1; then
	exec docker compose -f "$file" "$@"
elif command -v docker-compose >/dev/null 2>&1; then
	exec docker-compose -f "$file" "$@"
fi
echo "compose.sh: neither 'docker compose' nor 'docker-compose' is installed" >&2
exit 1
