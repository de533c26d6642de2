#!/usr/bin/env bash
# The main job: a working demo mesh on this machine. Builds the FROM scratch images,
# starts the Compose mesh (coordinator with relay, mesh DNS, SSH gateway, three nodes on
# two Docker networks; with the monitoring profile, on by default, Prometheus as a mesh
# member), waits until every node sees every peer and every scrape target is up, and
# shows it working.
# The mesh keeps running; stop it with `make demo-down` (scripts/compose.sh down -v).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
compose=scripts/compose.sh

scripts/images.sh
case ",${COMPOSE_PROFILES-monitoring}," in *,monitoring,*) scripts/prometheus-image.sh ;; esac
$compose up -d

echo "== waiting until every node reaches every other node"
deadline=$((SECONDS + 120))
for pair in node1:node2 node1:node3 node2:node3 node3:node1; do
	from=${pair%%:*} to=${pair##*:}
	until $compose exec -T "$from" tunnelmesh ping "$to" -c 1 >/dev/null 2>&1; do
		if [ $SECONDS -gt $deadline ]; then
			echo "demo: $from cannot reach $to after 120 s; logs:" >&2
			$compose logs --tail 50 >&2
			exit 1
		fi
		sleep 1
	done
done

for n in node1 node3; do
	echo
	echo "== $compose exec $n tunnelmesh status"
	$compose exec -T "$n" tunnelmesh status
done
echo
echo "== node1 pings node2 (same LAN) and node3 (other network) by name"
$compose exec -T node1 tunnelmesh ping node2.mesh -c 2
$compose exec -T node1 tunnelmesh ping node3.mesh -c 2
# ---- dockerwatch: node1's labelled web container, reached by name from node2 ----
echo
echo "== node2 reaches node1's web container by name (dockerwatch: forward, name, filter rule)"
# The agent image has no HTTP client: the demo image's client runs in node2's
# network namespace, and so uses node2's resolver (meshdns) and tunnels.
node2=$($compose ps -q node2)
node3=$($compose ps -q node3)
echo "\$ docker run --rm --network container:\$($compose ps -q node2) tunnelmesh/demo-web:dev get http://web.node1.mesh:8080/"
deadline=$((SECONDS + 60))
until docker run --rm --network "container:$node2" tunnelmesh/demo-web:dev get --timeout 3s http://web.node1.mesh:8080/; do
	if [ $SECONDS -gt $deadline ]; then
		echo "demo: node2 cannot reach http://web.node1.mesh:8080/ after 60 s; logs:" >&2
		$compose logs --tail 30 dockerwatch node1 web >&2
		exit 1
	fi
	sleep 1
done
echo "== node3 may not (the container's tunnelmesh.allow is node2)"
if docker run --rm --network "container:$node3" tunnelmesh/demo-web:dev get --timeout 3s http://web.node1.mesh:8080/; then
	echo "demo: node3 reached web.node1.mesh:8080, which only node2 may" >&2
	exit 1
fi
echo "node3: refused, as the policy says"
# ---- end dockerwatch ----
case ",${COMPOSE_PROFILES-monitoring}," in *,monitoring,*)
	echo
	echo "== Prometheus (a mesh member) finds every node through the registry: waiting for its targets"
	# bash's /dev/tcp: the machine may have no HTTP client.
	prom_port=${TUNNELMESH_PROMETHEUS_PORT:-9090}
	targets() {
		exec 3<>/dev/tcp/127.0.0.1/"$prom_port" || return 1
		printf 'GET /api/v1/targets?state=active HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
		cat <&3
		exec 3<&-
	}
	deadline=$((SECONDS + 120))
	while :; do
		page=$(targets 2>/dev/null || true)
		up=$(grep -o '"health":"up"' <<<"$page" | wc -l)
		all=$(grep -o '"health":"[a-z]*"' <<<"$page" | wc -l)
		if [ "$all" -gt 0 ] && [ "$up" -eq "$all" ]; then
			echo "Prometheus: $up of $all targets up: http://127.0.0.1:$prom_port/targets"
			break
		fi
		if [ $SECONDS -gt $deadline ]; then
			echo "demo: Prometheus has $up of $all targets up after 120 s" >&2
			$compose logs --tail 30 prometheus monitoring-agent >&2
			exit 1
		fi
		sleep 2
	done
	;;
esac
echo
echo "The demo mesh is running. Try: $compose exec node2 tunnelmesh status"
echo "Stop it and remove its state: make demo-down"
