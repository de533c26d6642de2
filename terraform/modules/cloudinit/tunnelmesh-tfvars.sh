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
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$n" ]; do
	echo "node $(create)" >>"$out"
	i=$((i + 1))
done
if [ "$storage" = true ]; then echo "storage $(create --tag storage)" >>"$out"; fi
if [ "$nfsd" = true ]; then echo "nfsd $(create --tag nfs)" >>"$out"; fi
if [ "$monitoring" = true ]; then
	echo "monitoring $(create --tag monitoring)" >>"$out"
	echo "scrape $(tunnelmesh admin --config "$conf" scrape-tokens create --name "prometheus-$(date -u +%Y%m%d%H%M%S)" --expiry 8760h)" >>"$out"
fi
python3 - "$out" "$n" "$storage" "$nfsd" "$monitoring" <<'EOP'
import json, sys
path, n, storage, nfsd, monitoring = sys.argv[1], int(sys.argv[2]), *(a == "true" for a in sys.argv[3:6])
toks = {"node": [], "storage": [], "nfsd": [], "monitoring": [], "scrape": []}
for line in open(path):
    kind, tok = line.split()
    toks[kind].append(tok)
v = {"node_count": n, "join_tokens": toks["node"],
     "storage_enabled": storage, "nfsd_enabled": nfsd, "monitoring_enabled": monitoring}
if storage:
    v["storage_join_token"] = toks["storage"][0]
if nfsd:
    v["nfsd_join_token"] = toks["nfsd"][0]
if monitoring:
    v["monitoring_join_token"] = toks["monitoring"][0]
    v["scrape_token"] = toks["scrape"][0]
    v["registry_ca"] = open("/var/lib/tunnelmesh/registry/tls.crt").read()
json.dump(v, sys.stdout, indent=2)
print()
EOP
