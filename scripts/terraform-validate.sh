#!/usr/bin/env bash
# Checks terraform/ offline: fmt -check, then init (providers from the
# filesystem mirror ../shared/terraform/mirror beside the repository),
# validate and tflint for every module and the example, and plan of the
# example with a dummy DigitalOcean token (no data source is read, so
# nothing reaches the network): the coordinator alone, with nodes, and with
# nodes and the optional services (storage, nfsd, monitoring).
#
#   scripts/terraform-validate.sh                 # terraform 1.5.7 from GOPATH/bin (installed when missing)
#   TERRAFORM=/path/to/tofu scripts/terraform-validate.sh   # the same checks with OpenTofu
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
mirror="$root/../shared/terraform/mirror"
[ -d "$mirror" ] || { echo "terraform-validate: provider mirror $mirror not found (shared/ beside the repository)" >&2; exit 1; }
mirror=$(cd "$mirror" && pwd)

tf_default=$(scripts/terraform-tools.sh)
TF=${TERRAFORM:-$tf_default}
TFLINT=${TFLINT:-$(go env GOPATH)/bin/tflint}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The mirror's registry.terraform.io packages, linked under both host names
# (OpenTofu looks under registry.opentofu.org; a copy of shared/ may hold
# that tree as text files where there were symlinks).
(cd "$mirror/registry.terraform.io" && find . -name '*.zip') | while read -r zip; do
	for host in registry.terraform.io registry.opentofu.org; do
		mkdir -p "$work/mirror/$host/$(dirname "$zip")"
		ln -s "$mirror/registry.terraform.io/$zip" "$work/mirror/$host/$zip"
	done
done
cat >"$work/cli.tfrc" <<EOT
provider_installation {
  filesystem_mirror {
    path    = "$work/mirror"
    include = ["registry.terraform.io/digitalocean/*", "registry.opentofu.org/digitalocean/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*", "registry.opentofu.org/*/*"]
  }
}
EOT
export TF_CLI_CONFIG_FILE="$work/cli.tfrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_INPUT=0
unset TF_DATA_DIR
# The provider is unpacked once and linked into each directory.
export TF_PLUGIN_CACHE_DIR="$work/plugin-cache"
mkdir -p "$TF_PLUGIN_CACHE_DIR"
# A copy, so that .terraform/ and lock files never land in the work tree;
# the monitoring role reads ../observability beside it.
cp -r terraform "$work/terraform"
mkdir -p "$work/observability/prometheus" "$work/observability/alerts"
cp observability/prometheus/prometheus.yml "$work/observability/prometheus/"
cp observability/alerts/tunnelmesh.yml "$work/observability/alerts/"

echo "== $("$TF" version | head -1)"
echo "== fmt -check"
"$TF" fmt -check -recursive -diff "$work/terraform"

for dir in modules/cloudinit modules/coordinator modules/node modules/storage modules/nfsd modules/monitoring examples/mesh; do
	echo "== $dir: init, validate, tflint"
	(
		cd "$work/terraform/$dir"
		"$TF" init -backend=false -input=false >init.log 2>&1 || { cat init.log; exit 1; }
		"$TF" validate -no-color
		"$TFLINT" --config "$work/terraform/.tflint.hcl" --no-color
	)
done

echo "== examples/mesh: plan -var do_token=dummy (coordinator only, 2 nodes, 2 nodes and every service)"
sha=$(printf '%064d' 0)
cd "$work/terraform/examples/mesh"
plan() {
	"$TF" plan -no-color -input=false -lock=false -var do_token=dummy -var release_version=v0.0.0 \
		-var release_sha256="$sha" "$@" >plan.log 2>&1 || { cat plan.log; exit 1; }
	grep -E '^Plan:' plan.log
}
plan
grep -q '^Plan: 4 to add' plan.log || { echo "terraform-validate: want 4 resources for a coordinator alone"; cat plan.log; exit 1; }
plan -var node_count=2 -var 'join_tokens=["token-1","token-2"]'
grep -q '^Plan: 8 to add' plan.log || { echo "terraform-validate: want 8 resources with 2 nodes"; cat plan.log; exit 1; }
if grep -q 'token-1' plan.log; then
	echo "terraform-validate: a join token shows in the plan output" >&2
	exit 1
fi
# Each service is a droplet and its firewall.
plan -var node_count=2 -var 'join_tokens=["token-1","token-2"]' \
	-var storage_enabled=true -var storage_join_token=token-storage -var weed_sha256="$sha" \
	-var nfsd_enabled=true -var nfsd_join_token=token-nfs \
	-var monitoring_enabled=true -var monitoring_join_token=token-monitoring -var scrape_token=scrape-secret \
	-var 'registry_ca=-----BEGIN CERTIFICATE-----'
grep -q '^Plan: 14 to add' plan.log || { echo "terraform-validate: want 14 resources with 2 nodes and 3 services"; cat plan.log; exit 1; }
for secret in token-1 token-storage token-nfs token-monitoring scrape-secret; do
	if grep -q "$secret" plan.log; then
		echo "terraform-validate: $secret shows in the plan output" >&2
		exit 1
	fi
done
for m in storage nfsd monitoring; do
	grep -q "module.$m\[0\].module.node.digitalocean_droplet.node will be created" plan.log ||
		{ echo "terraform-validate: no $m droplet in the plan"; cat plan.log; exit 1; }
done
# A service without its inputs is refused by the example's checks.
if plan -var storage_enabled=true -var storage_join_token=token-storage 2>/dev/null; then :; fi
grep -q 'storage_enabled needs weed_sha256' plan.log ||
	{ echo "terraform-validate: storage without weed_sha256 was not warned about"; cat plan.log; exit 1; }
echo "terraform-validate: ok"
