#!/bin/sh
# tunnelmesh-tfvars N [storage] [nfsd] [monitoring] [--expiry D]: print, as a
# Terraform variables file (JSON, for terraform/examples/mesh:
# > tokens.auto.tfvars.json), what the next apply needs to add N nodes and
# the named optional services:
#   node_count, join_tokens            N single-use tokens
#   storage_enabled, storage_join_token    a token tagged storage
#   nfsd_enabled, nfsd_join_token          a token tagged nfs
#   monitoring_enabled, monitoring_join_token, scrape_token, registry_ca
#                                      a token tagged monitoring, a scrape
#                                      token (1 year) and the registry's
#                                      certificate, for Prometheus
# Join tokens are valid for D (default 1h). A service left out is disabled
# (its droplet destroyed by the apply): name every service the mesh keeps.
# Waits for cloud-init and the coordinator like tunnelmesh-tokens.
set -eu
usage() { echo "usage: tunnelmesh-tfvars N [storage] [nfsd] [monitoring] [--expiry D]" >&2; exit 2; }
n=${1:-}
[ "$n" -ge 0 ] 2>/dev/null || usage
shift
expiry=1h storage=false nfsd=false monitoring=false
while [ $# -gt 0 ]; do
	case "$1" in
	storage) storage=true ;;
	nfsd) nfsd=true ;;
	monitoring) monitoring=true ;;
	--expiry) [ $# -ge 2 ] || usage; expiry=$2; shift ;;
	*) usage ;;
	esac
	shift
done
conf=/etc/tunnelmesh/coordinator.yaml
if command -v cloud-init >/dev/null 2>&1; then
	cloud-init status --wait >/dev/null || true
fi
create() { # [--tag T]
	tunnelmesh admin --config "$conf" tokens create --expiry "$expiry" "$@"
}
i=0
until create >/dev/null 2>&1; do # the coordinator answers (the token is wasted: it expires unused)
	i=$((i + 1))
	if [ "$i" -ge 240 ]; then
		create >/dev/null # its error, on stderr
		exit 1
	fi
	sleep 0.5
done
# Every token first (an assignment stops the script when a command fails),
# then the JSON. Tokens and the PEM certificate hold no character JSON must
# escape but the certificate's newlines.
token() { # [--tag T]
	t=$(create "$@")
	[ -n "$t" ] || { echo "tunnelmesh-tfvars: empty token" >&2; exit 1; }
	printf '"%s"' "$t"
}
nodes=
i=0
while [ "$i" -lt "$n" ]; do
	t=$(token)
	nodes="$nodes${nodes:+, }$t"
	i=$((i + 1))
done
extra=
if [ "$storage" = true ]; then
	t=$(token --tag storage)
	extra="$extra,
  \"storage_join_token\": $t"
fi
if [ "$nfsd" = true ]; then
	t=$(token --tag nfs)
	extra="$extra,
  \"nfsd_join_token\": $t"
fi
if [ "$monitoring" = true ]; then
	t=$(token --tag monitoring)
	scrape=$(tunnelmesh admin --config "$conf" scrape-tokens create --name "prometheus-$(date -u +%Y%m%d%H%M%S)" --expiry 8760h)
	[ -n "$scrape" ] || { echo "tunnelmesh-tfvars: empty scrape token" >&2; exit 1; }
	ca=$(awk '{ printf "%s\\n", $0 }' /var/lib/tunnelmesh/registry/tls.crt)
	extra="$extra,
  \"monitoring_join_token\": $t,
  \"scrape_token\": \"$scrape\",
  \"registry_ca\": \"$ca\""
fi
printf '{\n  "node_count": %d,\n  "join_tokens": [%s],\n  "storage_enabled": %s,\n  "nfsd_enabled": %s,\n  "monitoring_enabled": %s%s\n}\n' \
	"$n" "$nodes" "$storage" "$nfsd" "$monitoring" "$extra"
