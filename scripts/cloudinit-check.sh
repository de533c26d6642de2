#!/usr/bin/env bash
# Checks the droplets' cloud-init against the locally built release:
#
#  1. renders the user data of a coordinator, a node, and a node of each
#     service role (storage, nfsd, monitoring) with
#     terraform/modules/cloudinit (terraform apply of a provider-less
#     config, offline), pointing at the local tarball (file:// URL) and its
#     SHA-256, and for storage at the cached weed binary, gzipped;
#  2. validates both with `cloud-init schema` (Debian's cloud-init);
#  3. applies each to a fresh Debian root filesystem (debootstrap, cached by
#     scripts/debian-rootfs.sh; an overlay per run, so the cache stays
#     clean): writes its write_files, then runs its runcmd in a chroot, as
#     cloud-init would at first boot; then checks the binaries (their
#     versions), the units (enabled, `systemd-analyze verify` clean, the
#     `systemd-analyze security` exposure) and the files written; the
#     storage root gets weed, the nfsd root its checked config and export,
#     the monitoring root Debian's prometheus (apt-get in the chroot: the
#     one step that needs Debian's archive) with the repository's
#     configuration, checked by promtool;
#  4. starts the installed coordinator in the chroot, in a network namespace
#     of its own, and has the installed tunnelmesh-tokens print two tokens;
#  5. boots the coordinator's root with systemd in a container and runs every
#     unit there (scripts/systemd-boot-check.sh);
#  6. renders a node with a wrong checksum: the install fails and installs
#     nothing.
#
#   scripts/cloudinit-check.sh                    # builds the amd64 tarball first
#   DIST=dist scripts/cloudinit-check.sh          # uses dist/tunnelmesh-linux-amd64.tar.gz
#
# Needs root (chroot, mounts, namespaces), Docker, cloud-init, debootstrap,
# systemd (systemd-analyze) and python3 with PyYAML (scripts/install-deps.sh).
set -euo pipefail
[ -n "${TRACE:-}" ] && set -x
export PATH="$PATH:/usr/sbin:/sbin"

cd "$(dirname "$0")/.."
root=$PWD
[ "$(id -u)" -eq 0 ] || { echo "cloudinit-check: needs root (chroot, mounts, network namespaces)" >&2; exit 1; }
for c in cloud-init systemd-analyze unshare python3; do
	command -v "$c" >/dev/null || { echo "cloudinit-check: $c not installed (scripts/install-deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/tunnelmesh-cloudinit.XXXXXX)
cleanup() {
	for m in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# The tarball.
if [ -n "${DIST:-}" ]; then
	dist=$(cd "$DIST" && pwd)
else
	dist="$work/dist"
	ARCHES=amd64 OUT="$dist" scripts/release.sh >/dev/null
fi
tarball="$dist/tunnelmesh-linux-amd64.tar.gz"
[ -f "$tarball" ] || { echo "cloudinit-check: $tarball not found" >&2; exit 1; }
sha=$(sha256sum "$tarball" | cut -d' ' -f1)
version=$(tar -xzOf "$tarball" VERSION)
weed=$(storage/scripts/build-weed.sh)
gzip -1 <"$weed" >"$work/weed-linux-amd64.gz"
weed_sha=$(sha256sum "$work/weed-linux-amd64.gz" | cut -d' ' -f1)
rootfs=$(scripts/debian-rootfs.sh)
tf=$(scripts/terraform-tools.sh)
echo "== tarball $version sha256 $sha; rootfs $rootfs"

# 1. Render. The tarball is copied into each root at this path.
rel=/var/cache/tunnelmesh-release/tunnelmesh-linux-amd64.tar.gz
weedrel=/var/cache/tunnelmesh-release/weed-linux-amd64.gz
mkdir -p "$work/render"
# A relative source: Terraform uses the module in place (an absolute path is
# copied into .terraform/, away from ../observability, which it reads).
modsrc=$(realpath --relative-to="$work/render" "$root/terraform/modules/cloudinit")
cat >"$work/render/main.tf" <<EOT
module "coordinator" {
  source         = "$modsrc"
  role           = "coordinator"
  release_url    = "file://$rel"
  release_sha256 = "$sha"
  public_url     = "https://203.0.113.10:8443"
  policy         = file("$root/registry/policy/default.yaml")
}
module "node" {
  source          = "$modsrc"
  role            = "node"
  release_url     = "file://$rel"
  release_sha256  = "$sha"
  coordinator_url = "https://203.0.113.10:8443"
  join_token      = "tmj1-test-token"
  listen_port     = 51820
}
module "storage" {
  source          = "$modsrc"
  role            = "storage"
  release_url     = "file://$rel"
  release_sha256  = "$sha"
  weed_url        = "file://$weedrel"
  weed_sha256     = "$weed_sha"
  coordinator_url = "https://203.0.113.10:8443"
  join_token      = "tmj1-storage-token"
  storage_buckets = ["mesh", "backups"]
}
module "nfsd" {
  source          = "$modsrc"
  role            = "nfsd"
  release_url     = "file://$rel"
  release_sha256  = "$sha"
  coordinator_url = "https://203.0.113.10:8443"
  join_token      = "tmj1-nfs-token"
}
module "monitoring" {
  source          = "$modsrc"
  role            = "monitoring"
  release_url     = "file://$rel"
  release_sha256  = "$sha"
  coordinator_url = "https://203.0.113.10:8443"
  join_token      = "tmj1-monitoring-token"
  scrape_token    = "tmscrape-test"
  registry_ca     = file("$work/registry.crt")
}
module "badsum" {
  source          = "$modsrc"
  role            = "node"
  release_url     = "file://$rel"
  release_sha256  = "$(printf '%064d' 0)"
  coordinator_url = "https://203.0.113.10:8443"
}
output "coordinator" {
  value     = module.coordinator.user_data
  sensitive = true
}
output "node" {
  value     = module.node.user_data
  sensitive = true
}
output "storage" {
  value     = module.storage.user_data
  sensitive = true
}
output "nfsd" {
  value     = module.nfsd.user_data
  sensitive = true
}
output "monitoring" {
  value     = module.monitoring.user_data
  sensitive = true
}
output "badsum" {
  value     = module.badsum.user_data
  sensitive = true
}
EOT
# A certificate for Prometheus's ca_file (promtool reads it).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=203.0.113.10 \
	-keyout /dev/null -out "$work/registry.crt" 2>/dev/null
printf 'provider_installation {\n  direct {\n    exclude = ["*/*/*"]\n  }\n}\n' >"$work/cli.tfrc"
(
	cd "$work/render"
	export TF_CLI_CONFIG_FILE="$work/cli.tfrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_INPUT=0
	"$tf" init -input=false >init.log 2>&1 || { cat init.log; exit 1; }
	"$tf" apply -input=false -auto-approve >apply.log 2>&1 || { cat apply.log; exit 1; }
	for r in coordinator node storage nfsd monitoring badsum; do "$tf" output -raw "$r" >"$work/$r.yaml"; done
)

# 2. Schema.
for r in coordinator node storage nfsd monitoring badsum; do
	echo "== cloud-init schema $r"
	cloud-init schema --config-file "$work/$r.yaml"
done

# 3. Apply each to a fresh root.
newroot() { # name -> path of a writable overlay of the cached rootfs
	local d="$work/$1"
	mkdir -p "$d/upper" "$d/work" "$d/root"
	mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$d/upper,workdir=$d/work" "$d/root"
	mount -t proc proc "$d/root/proc"
	mkdir -p "$d/root$(dirname "$rel")"
	cp "$tarball" "$d/root$rel"
	ln "$work/weed-linux-amd64.gz" "$d/root$weedrel" 2>/dev/null || cp "$work/weed-linux-amd64.gz" "$d/root$weedrel"
	echo "$d/root"
}
python3 - "$work" <<'EOP' >/dev/null
import sys, yaml  # PyYAML: a dependency of cloud-init
EOP
apply_cloud_config() { # rootdir yaml: write_files, then runcmd in the chroot
	python3 - "$1" "$2" <<'EOP'
import os, sys, yaml, subprocess
root, path = sys.argv[1], sys.argv[2]
with open(path) as f:
    cfg = yaml.safe_load(f)
for wf in cfg.get("write_files", []):
    dst = os.path.join(root, wf["path"].lstrip("/"))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w") as out:
        out.write(wf.get("content", ""))
    os.chmod(dst, int(wf.get("permissions", "0644"), 8))
    assert wf.get("owner", "root:root") == "root:root", wf["path"]
    os.chown(dst, 0, 0)
for cmd in cfg.get("runcmd", []):
    argv = cmd if isinstance(cmd, list) else ["sh", "-c", cmd]
    r = subprocess.run(["chroot", root] + argv)
    if r.returncode != 0:
        sys.exit(f"runcmd {argv}: exit {r.returncode}")
EOP
}
fail() { echo "cloudinit-check: $*" >&2; exit 1; }
units="tunnelmesh.service tunnelmesh-coordinator.service tunnelmesh-registry.service tunnelmesh-relay.service tunnelmesh-sshgw.service tunnelmesh-meshdns.service
	tunnelmesh-storage.service tunnelmesh-nfsd.service tunnelmesh-dockerwatch.service"

check_install() { # rootdir enabled-unit...
	local r=$1 b got unit
	shift
	for b in tunnelmesh tunnelmesh-registry tunnelmesh-relay tunnelmesh-sshgw tunnelmesh-meshdns \
		tunnelmesh-storage tunnelmesh-nfsd tunnelmesh-dockerwatch; do
		got=$(chroot "$r" "/usr/local/bin/$b" --version) || fail "$b --version failed"
		case "$got" in "$b $version"*) ;; *) fail "$b --version = $got, want $b $version" ;; esac
	done
	for u in $units; do [ -f "$r/etc/systemd/system/$u" ] || fail "$u not installed"; done
	for unit in "$@"; do
		got=$(systemctl --root="$r" is-enabled "$unit") || true
		[ "$got" = enabled ] || fail "$unit is $got, want enabled"
		[ -L "$r/etc/systemd/system/multi-user.target.wants/$unit" ] || fail "$unit not linked into multi-user.target.wants"
	done
	# verify prints nothing for a clean unit (warnings exit 0, so output fails).
	got=$(cd "$r" && systemd-analyze verify --man=no --root="$r" $units 2>&1) || fail "systemd-analyze verify: $got"
	[ -z "$got" ] || fail "systemd-analyze verify: $got"
	for u in $units; do
		got=$(systemd-analyze security --offline=true --root="$r" --threshold=40 "$u" 2>&1) ||
			fail "systemd-analyze security $u above 4.0: $(tail -1 <<<"$got")"
		echo "   $(tail -1 <<<"$got" | sed 's/→ //')"
	done
	[ -f "$r/usr/local/share/doc/tunnelmesh/LICENSE" ] || fail "LICENSE not installed"
}
mode() { stat -c %a "$1"; }

echo "== coordinator: install in a chroot"
c=$(newroot coordinator)
apply_cloud_config "$c" "$work/coordinator.yaml"
check_install "$c" tunnelmesh-coordinator.service
[ "$(mode "$c/etc/tunnelmesh/coordinator.yaml")" = 600 ] || fail "coordinator.yaml mode $(mode "$c/etc/tunnelmesh/coordinator.yaml"), want 600"
got=$(cat "$c/etc/tunnelmesh/coordinator.yaml")
want='listen: ":8443"
public_url: https://203.0.113.10:8443
stun_listen: ":3478"
mesh_cidr: 100.64.0.0/10
policy_file: /etc/tunnelmesh/policy.yaml'
[ "$got" = "$want" ] || fail "coordinator.yaml = $got, want $want"
cmp -s "$c/etc/tunnelmesh/policy.yaml" registry/policy/default.yaml || fail "policy.yaml is not the policy given"
[ "$(mode "$c/etc/tunnelmesh/policy.yaml")" = 600 ] || fail "policy.yaml mode $(mode "$c/etc/tunnelmesh/policy.yaml"), want 600"
[ -x "$c/usr/local/sbin/tunnelmesh-tokens" ] || fail "tunnelmesh-tokens not installed"

echo "== node: install in a chroot"
n=$(newroot node)
apply_cloud_config "$n" "$work/node.yaml"
check_install "$n" tunnelmesh.service
[ "$(mode "$n/etc/tunnelmesh/join.token")" = 600 ] || fail "join.token mode $(mode "$n/etc/tunnelmesh/join.token"), want 600"
[ "$(cat "$n/etc/tunnelmesh/join.token")" = tmj1-test-token ] || fail "join.token holds $(cat "$n/etc/tunnelmesh/join.token")"
want='ExecStart=/usr/local/bin/tunnelmesh join --once --coordinator https://203.0.113.10:8443 --token-file /etc/tunnelmesh/join.token --listen-port 51820'
grep -qxF "$want" "$n/etc/systemd/system/tunnelmesh.service.d/join.conf" || fail "join drop-in: $(cat "$n/etc/systemd/system/tunnelmesh.service.d/join.conf")"
[ ! -e "$n/etc/tunnelmesh/coordinator.yaml" ] || fail "a node got a coordinator.yaml"

node_dropin() { # rootdir flags: the join drop-in with the service's flags
	local want="ExecStart=/usr/local/bin/tunnelmesh join --once --coordinator https://203.0.113.10:8443 --token-file /etc/tunnelmesh/join.token --listen-port 51820$2"
	grep -qxF "$want" "$1/etc/systemd/system/tunnelmesh.service.d/join.conf" || fail "join drop-in: $(cat "$1/etc/systemd/system/tunnelmesh.service.d/join.conf"), want $want"
}

echo "== storage: install in a chroot"
s=$(newroot storage)
apply_cloud_config "$s" "$work/storage.yaml"
check_install "$s" tunnelmesh.service tunnelmesh-storage.service
node_dropin "$s" " --advertise-storage"
cmp -s "$s/usr/local/bin/weed" "$weed" || fail "/usr/local/bin/weed is not the weed binary"
[ "$(mode "$s/usr/local/bin/weed")" = 755 ] || fail "weed mode $(mode "$s/usr/local/bin/weed"), want 755"
chroot "$s" /usr/local/bin/weed version >/dev/null || fail "weed version failed in the chroot"
[ "$(mode "$s/etc/tunnelmesh/storage.yaml")" = 600 ] || fail "storage.yaml mode $(mode "$s/etc/tunnelmesh/storage.yaml"), want 600"
grep -qxF 'buckets: [mesh, backups]' "$s/etc/tunnelmesh/storage.yaml" || fail "storage.yaml: $(cat "$s/etc/tunnelmesh/storage.yaml")"
# The config parses: the binary refuses a bad one before it needs the node.
got=$(timeout 10 chroot "$s" /usr/local/bin/tunnelmesh-storage --config /etc/tunnelmesh/storage.yaml 2>&1) || true
case "$got" in *"unknown key"* | *"storage.yaml"*) fail "storage.yaml refused: $got" ;; esac
echo "   weed $(chroot "$s" /usr/local/bin/weed version 2>/dev/null | head -1)"

echo "== nfsd: install in a chroot"
f=$(newroot nfsd)
apply_cloud_config "$f" "$work/nfsd.yaml"
check_install "$f" tunnelmesh.service tunnelmesh-nfsd.service
node_dropin "$f" " --advertise-nfs"
[ -d "$f/srv/nfs/shared" ] || fail "/srv/nfs/shared not created"
chroot "$f" /usr/local/bin/tunnelmesh-nfsd -config /etc/tunnelmesh/nfsd.yaml -check >/dev/null || fail "nfsd.yaml does not check"

echo "== monitoring: install in a chroot (Debian's prometheus from the archive)"
m=$(newroot monitoring)
cp -L /etc/resolv.conf "$m/etc/resolv.conf"
apply_cloud_config "$m" "$work/monitoring.yaml"
check_install "$m" tunnelmesh.service prometheus.service
node_dropin "$m" ""
grep -q 'url: https://203.0.113.10:8443/api/v1/sd/prometheus?service=agent' "$m/etc/prometheus/prometheus.yml" ||
	fail "prometheus.yml does not point at the coordinator"
cmp -s "$m/etc/prometheus/rules/tunnelmesh.yml" observability/alerts/tunnelmesh.yml || fail "alert rules not installed"
got=$(chroot "$m" stat -c '%a %U:%G' /etc/prometheus/tunnelmesh/scrape.token) # the root's user names
[ "$got" = "640 root:prometheus" ] || fail "scrape.token: $got, want 640 root:prometheus"
[ "$(cat "$m/etc/prometheus/tunnelmesh/scrape.token")" = tmscrape-test ] || fail "scrape.token holds the wrong token"
[ ! -e "$m/etc/tunnelmesh/prometheus/scrape.token" ] || fail "the scrape token's copy from the user data was left behind"
cmp -s "$m/etc/prometheus/tunnelmesh/registry.crt" "$work/registry.crt" || fail "registry.crt is not the certificate given"
chroot "$m" promtool check config /etc/prometheus/prometheus.yml >/dev/null || fail "promtool check config"
echo "   $(chroot "$m" prometheus --version 2>&1 | head -1)"

# The coordinator starts only if its config and policy parse; the tokens
# come from the running coordinator.
echo "== coordinator: start it in the chroot (own network namespace), tunnelmesh-tokens 2"
got=$(unshare --net --fork sh -c '
	ip link set lo up
	chroot "$1" /usr/local/bin/tunnelmesh coordinator --config /etc/tunnelmesh/coordinator.yaml >"$2/coordinator.log" 2>&1 &
	pid=$!
	out=$(chroot "$1" /usr/local/sbin/tunnelmesh-tokens 2 2>"$2/tokens.err") || true # waits for the coordinator
	chroot "$1" /usr/local/sbin/tunnelmesh-tfvars 2 storage nfsd monitoring >"$2/tfvars.json" 2>"$2/tfvars.err" || true
	chroot "$1" /usr/local/bin/tunnelmesh admin --config /etc/tunnelmesh/coordinator.yaml tokens list --json >"$2/tokens.json" 2>>"$2/tfvars.err" || true
	kill $pid; wait $pid 2>/dev/null
	printf "%s" "$out"' sh "$c" "$work") || true
python3 -c '
import json, sys
toks = json.loads(sys.argv[1])
assert isinstance(toks, list) and len(toks) == 2 and all(isinstance(t, str) and len(t) > 20 for t in toks) and toks[0] != toks[1], toks
' "$got" || { cat "$work/coordinator.log" "$work/tokens.err" >&2; fail "tunnelmesh-tokens 2 printed $(wc -c <<<"$got") bytes, want a JSON list of two tokens"; }
echo "   two tokens, JSON list"
# tunnelmesh-tfvars: every key a variable of examples/mesh, tokens distinct.
python3 - "$work/tfvars.json" terraform/examples/mesh/variables.tf "$work/tokens.json" <<'EOP2' || { cat "$work/tfvars.err" >&2; fail "tunnelmesh-tfvars 2 storage nfsd monitoring: $(head -c 300 "$work/tfvars.json")"; }
import json, re, sys
v = json.load(open(sys.argv[1]))
declared = set(re.findall(r'^variable "([a-z_0-9]+)"', open(sys.argv[2]).read(), re.M))
assert set(v) <= declared, set(v) - declared
assert v["node_count"] == 2 and len(v["join_tokens"]) == 2, v
assert v["storage_enabled"] and v["nfsd_enabled"] and v["monitoring_enabled"], v
toks = v["join_tokens"] + [v["storage_join_token"], v["nfsd_join_token"], v["monitoring_join_token"], v["scrape_token"]]
assert all(isinstance(t, str) and len(t) > 20 for t in toks) and len(set(toks)) == len(toks), toks
assert v["registry_ca"].startswith("-----BEGIN CERTIFICATE-----"), v["registry_ca"][:40]
# Each service's token carries the service's tag (the registry lists tags, not tokens).
listed = json.load(open(sys.argv[3]))
tags = sorted(",".join(sorted(t.get("tags") or [])) for t in listed)
for tag in ("storage", "nfs", "monitoring"):
    assert tags.count(tag) == 1, (tag, tags)
EOP2
echo "   tunnelmesh-tfvars: 2 node tokens, a token per service, a scrape token, the registry's certificate"

echo "== coordinator root booted with systemd (container): every unit runs under its hardening"
scripts/systemd-boot-check.sh "$c"

echo "== wrong checksum: the install fails and installs nothing"
b=$(newroot badsum)
if apply_cloud_config "$b" "$work/badsum.yaml" 2>"$work/badsum.err"; then
	fail "install with a wrong checksum succeeded"
fi
grep -q 'checksum mismatch' "$work/badsum.err" || fail "wrong checksum: $(cat "$work/badsum.err")"
[ ! -e "$b/usr/local/bin/tunnelmesh" ] || fail "wrong checksum: tunnelmesh installed anyway"
echo "cloudinit-check: ok"
