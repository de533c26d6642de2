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

for dir in modules/cloudinit modules/droplet modules/coordinator modules/node examples/mesh; do
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
	grep -q "module.$m\[0\].module.droplet.digitalocean_droplet.this will be created" plan.log ||
		{ echo "terraform-validate: no $m droplet in the plan"; cat plan.log; exit 1; }
	grep -q "\"tunnelmesh-$m\"" plan.log || { echo "terraform-validate: no droplet tagged tunnelmesh-$m in the plan"; cat plan.log; exit 1; }
done

# The droplets of a mesh applied before the service modules became part of
# modules/node (and the droplet and firewall of modules/droplet) move to
# their new addresses: a prior state at the old addresses, built from this
# plan's values, plans nothing to create or destroy.
"$TF" plan -no-color -input=false -lock=false -var do_token=dummy -var release_version=v0.0.0 -var release_sha256="$sha" \
	-var node_count=2 -var 'join_tokens=["token-1","token-2"]' \
	-var storage_enabled=true -var storage_join_token=token-storage -var weed_sha256="$sha" \
	-var nfsd_enabled=true -var nfsd_join_token=token-nfs \
	-var monitoring_enabled=true -var monitoring_join_token=token-monitoring -var scrape_token=scrape-secret \
	-var 'registry_ca=-----BEGIN CERTIFICATE-----' -out=services.plan >/dev/null
"$TF" show -json services.plan >services.json
python3 - services.json "$root/../shared/terraform/digitalocean-2.99.1.schema.json" >old.tfstate <<'EOP'
import json, re, sys
plan = json.load(open(sys.argv[1]))
schemas = json.load(open(sys.argv[2]))["provider_schemas"]["registry.terraform.io/digitalocean/digitalocean"]["resource_schemas"]
# New address -> the address it had before.
def old_address(addr):
    addr = re.sub(r"^module\.(storage|nfsd|monitoring)\[0\]\.module\.droplet\.digitalocean_(droplet|firewall)\.this$",
                  r"module.\1[0].module.node.digitalocean_\2.node", addr)
    addr = re.sub(r"^module\.node\[(\d+)\]\.module\.droplet\.digitalocean_(droplet|firewall)\.this$",
                  r"module.node[\1].digitalocean_\2.node", addr)
    return re.sub(r"^module\.coordinator\.module\.droplet\.digitalocean_(droplet|firewall)\.this$",
                  r"module.coordinator.digitalocean_\1.coordinator", addr)
resources, ids = [], {}
def walk(m):
    for r in m.get("resources", []):
        yield r
    for c in m.get("child_modules", []):
        yield from walk(c)
planned = list(walk(plan["planned_values"]["root_module"]))
for i, r in enumerate(planned):
    ids[r["address"]] = str(1000 + i)
for r in planned:
    v = dict(r.get("values", {}))
    # What the provider computes at apply (addresses, URNs, ...): a value of
    # its type, as a state of an applied mesh holds.
    empty = {"string": "", "number": 0, "bool": False}
    for k, a in schemas[r["type"]]["block"]["attributes"].items():
        if k not in v and a.get("computed"):
            v[k] = empty.get(a["type"], []) if isinstance(a["type"], str) else []
    v["id"] = ids[r["address"]]
    mod = r["address"].rsplit(".", 2)[0] if r["address"].startswith("module.") else ""
    if r["type"] == "digitalocean_firewall":
        v["droplet_ids"] = [int(ids[mod + ".digitalocean_droplet.this"])]
    if r["type"] == "digitalocean_reserved_ip":
        v["ip_address"] = "192.0.2.1"
    if r["type"] == "digitalocean_reserved_ip_assignment":
        v["ip_address"] = "192.0.2.1"
        v["droplet_id"] = int(ids["module.coordinator.module.droplet.digitalocean_droplet.this"])
    old = old_address(r["address"])
    module, rtype, name = old.rsplit(".", 2)[0] if old.startswith("module.") else None, r["type"], old.rsplit(".", 1)[1]
    res = {"mode": "managed", "type": rtype, "name": name,
           "provider": 'provider["registry.terraform.io/digitalocean/digitalocean"]',
           "instances": [{"schema_version": schemas[rtype]["version"], "attributes": v, "sensitive_attributes": []}]}
    if module:
        res["module"] = module
    resources.append(res)
json.dump({"version": 4, "terraform_version": "1.5.7", "serial": 1, "lineage": "00000000-0000-4000-8000-000000000000",
           "outputs": {}, "resources": resources}, sys.stdout, indent=1)
EOP
"$TF" plan -no-color -input=false -lock=false -refresh=false -state=old.tfstate -var do_token=dummy -var release_version=v0.0.0 -var release_sha256="$sha" \
	-var node_count=2 -var 'join_tokens=["token-1","token-2"]' \
	-var storage_enabled=true -var storage_join_token=token-storage -var weed_sha256="$sha" \
	-var nfsd_enabled=true -var nfsd_join_token=token-nfs \
	-var monitoring_enabled=true -var monitoring_join_token=token-monitoring -var scrape_token=scrape-secret \
	-var 'registry_ca=-----BEGIN CERTIFICATE-----' >moved.log 2>&1 || { cat moved.log; exit 1; }
moved=$(grep -cE ' has moved to |^  # \(moved from ' moved.log || true)
echo "moved: $moved resources; $(grep -E '^(Plan:|No changes)' moved.log || true)"
[ "$moved" -eq 12 ] || { echo "terraform-validate: want 12 resources moved from the old addresses"; cat moved.log; exit 1; }
if grep -qE 'will be (created|destroyed|updated)|must be replaced' moved.log; then
	echo "terraform-validate: the old layout's state plans a change besides the moves" >&2
	cat moved.log
	exit 1
fi

# A service without its inputs is refused.
if "$TF" plan -no-color -input=false -lock=false -var do_token=dummy -var release_version=v0.0.0 -var release_sha256="$sha" \
	-var storage_enabled=true -var storage_join_token=token-storage >plan.log 2>&1; then
	echo "terraform-validate: storage without weed_sha256 was planned" >&2
	exit 1
fi
grep -q 'storage needs weed_url and weed_sha256' plan.log ||
	{ echo "terraform-validate: storage without weed_sha256 was not refused with its message"; cat plan.log; exit 1; }

# Bad input to modules/node and modules/coordinator, a plan each (Terraform
# stops at the first module whose inputs fail): each is refused with its
# message.
bad="$work/terraform/bad-input"
mkdir -p "$bad"
cp versions.tf "$bad/"
cat >"$bad/common.tf" <<'EOT'
variable "do_token" {
  type      = string
  sensitive = true
}
# Secrets as a caller passes them: values (not marked sensitive here), not
# text of the call.
variable "secrets" {
  type    = map(string)
  default = { scrape = "scrape-secret", join = "join-secret" }
}
locals {
  sha     = "0000000000000000000000000000000000000000000000000000000000000000"
  release = { url = "https://example.com/tunnelmesh-linux-amd64.tar.gz", coordinator_url = "https://192.0.2.1:8443" }
}
EOT
# case.tf: one call of modules/node ("node") or modules/coordinator ("coordinator").
case_tf() { # module attribute...: the call with the required inputs and the attributes given
	python3 - "$@" >"$bad/case.tf" <<'EOP'
import sys
module, attrs = sys.argv[1], sys.argv[2:]
given = {a.split("=", 1)[0].strip() for a in attrs}
base = {"region": '"fra1"', "release_url": "local.release.url", "release_sha256": "local.sha"}
if module == "node":
    base.update(name='"bad-input"', coordinator_url="local.release.coordinator_url")
lines = [f'module "{module}" {{', f'  source = "../modules/{module}"']
lines += [f"  {k} = {v}" for k, v in base.items() if k not in given]
lines += [f"  {a}" for a in attrs]
print("\n".join(lines + ["}"]))
EOP
}
cases=0
refused() { # module message attribute...: the plan fails with the message
	local module=$1 msg=$2
	shift 2
	case_tf "$module" "$@"
	if "$TF" plan -no-color -input=false -lock=false -var do_token=dummy >plan.log 2>&1; then
		echo "terraform-validate: planned, want refused ($msg): $*" >&2
		exit 1
	fi
	# Terraform wraps its messages: compare with the lines joined.
	tr -s ' \n' '  ' <plan.log | grep -qF "$msg" || { echo "terraform-validate: $*: no error \"$msg\"" >&2; cat plan.log; exit 1; }
	cases=$((cases + 1))
}
cd "$bad"
case_tf node
mv case.tf node.tf
case_tf coordinator
cat node.tf >>case.tf && rm node.tf
"$TF" init -backend=false -input=false >init.log 2>&1 || { cat init.log; exit 1; }
# What the node's services need and check.
refused node 'weed_sha256 must be 64 lowercase hex digits' 'storage = { weed_url = "https://example.com/weed.gz", weed_sha256 = "abc" }'
refused node 'storage needs weed_url and weed_sha256' 'storage = { weed_url = "", weed_sha256 = local.sha }'
refused node 'weed_url must be an http(s):// or file:// URL' 'storage = { weed_url = "example.com/weed.gz", weed_sha256 = local.sha }'
refused node 'storage_buckets (storage.buckets of modules/node) must name at least one bucket' 'storage = { weed_url = "https://example.com/weed.gz", weed_sha256 = local.sha, buckets = ["Bad_Bucket"] }'
refused node 'service_config (storage.config or nfsd.config of modules/node) must be YAML' 'nfsd = { config = "exports: [" }'
refused node 'monitoring needs scrape_token' 'monitoring = { scrape_token = "", registry_ca = "-----BEGIN CERTIFICATE-----" }'
refused node 'registry_ca must be the registry' 'monitoring = { scrape_token = "s", registry_ca = "not a certificate" }'
refused node 'set at most one of storage, nfsd and monitoring' 'nfsd = {}' 'storage = { weed_url = "https://example.com/weed.gz", weed_sha256 = local.sha }'
# The node's own inputs.
refused node 'listen_port must be a whole number from 1 to 65535' 'listen_port = 70000'
refused node 'coordinator_url must be https://HOST:PORT' 'coordinator_url = "http://192.0.2.1:8443/x"'
refused node 'join_token must be one token' 'join_token = "two tokens"'
refused node 'release_sha256 must be 64 lowercase hex digits' 'release_sha256 = "latest"'
refused node 'release_url must be an http(s):// or file:// URL' 'release_url = "tunnelmesh.tar.gz"'
# The droplet's, whichever module is given them.
refused node 'name must be one DNS label: 1 to 63' 'name = "Bad_Name"'
refused node 'region must be a DigitalOcean region slug' 'region = "Frankfurt"'
refused node 'size must be a DigitalOcean size slug' 'size = "1 CPU"'
refused node 'image must be a DigitalOcean image slug' 'image = "Debian 12"'
refused node 'ssh_keys must be DigitalOcean SSH key IDs' 'ssh_keys = ["my laptop"]'
refused node 'ssh_source_addresses must be IP addresses or prefixes' 'ssh_source_addresses = ["anywhere"]'
refused node 'vpc_uuid must be a VPC' 'vpc_uuid = "default"'
refused node 'tags must be 1 to 255 letters' 'tags = ["two words"]'
refused coordinator 'region must be a DigitalOcean region slug' 'region = "Frankfurt"'
# The coordinator's own.
refused coordinator 'dns_name must be one DNS label' 'dns_domain = "example.com"' 'dns_name = "mesh.example.com"'
refused coordinator 'dns_domain must be a domain name' 'dns_domain = "https://example.com"'
refused coordinator 'api_port must be a whole number from 1 to 65535' 'api_port = 0'
refused coordinator 'stun_port must be a whole number from 1 to 65535' 'stun_port = 3478.5'
refused coordinator 'mesh_cidr must be an IPv4 prefix' 'mesh_cidr = "fd00::/8"'
refused coordinator 'policy must be YAML' 'policy = "rules: ["'
echo "bad input: $cases cases refused, each with its message"
# A secret given to a refused input does not show in the message.
refused node 'monitoring needs registry_ca' 'monitoring = { scrape_token = var.secrets.scrape, registry_ca = "" }' 'join_token = var.secrets.join'
if grep -qE 'scrape-secret|join-secret' plan.log; then
	echo "terraform-validate: a token shows in a refused plan's message" >&2
	cat plan.log
	exit 1
fi
echo "terraform-validate: ok"
