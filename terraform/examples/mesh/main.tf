# A TunnelMesh mesh on DigitalOcean: one coordinator and node_count nodes,
# each installing the release tarball at first boot. See ../../README.md.

locals {
  release_url = var.release_url != "" ? var.release_url : "https://github.com/tunnelmesh/tunnelmesh/releases/download/${var.release_version}/tunnelmesh-linux-amd64.tar.gz"
  weed_url    = var.weed_url != "" ? var.weed_url : "https://github.com/tunnelmesh/tunnelmesh/releases/download/${var.release_version}/weed-linux-amd64.gz"
}

module "coordinator" {
  source               = "../../modules/coordinator"
  name                 = "${var.name_prefix}-coordinator"
  region               = var.region
  size                 = var.coordinator_size
  ssh_keys             = var.ssh_keys
  ssh_source_addresses = var.ssh_source_addresses
  release_url          = local.release_url
  release_sha256       = var.release_sha256
  dns_domain           = var.dns_domain
  dns_name             = var.dns_name
}

module "node" {
  source               = "../../modules/node"
  count                = var.node_count
  name                 = "${var.name_prefix}-node-${count.index + 1}"
  region               = var.region
  size                 = var.node_size
  ssh_keys             = var.ssh_keys
  ssh_source_addresses = var.ssh_source_addresses
  release_url          = local.release_url
  release_sha256       = var.release_sha256
  coordinator_url      = module.coordinator.url
  join_token           = try(var.join_tokens[count.index], "")
}

check "join_tokens" {
  assert {
    condition     = nonsensitive(length(var.join_tokens)) == 0 || nonsensitive(length(var.join_tokens)) >= var.node_count
    error_message = "fewer join_tokens than node_count: the nodes without one are installed but not joined."
  }
}

# Optional services, each a droplet that joins the mesh as a node with a
# token of its tag (tunnelmesh-tfvars on the coordinator prints them all).

module "storage" {
  source               = "../../modules/storage"
  count                = var.storage_enabled ? 1 : 0
  name                 = "${var.name_prefix}-storage"
  region               = var.region
  size                 = var.storage_size
  ssh_keys             = var.ssh_keys
  ssh_source_addresses = var.ssh_source_addresses
  release_url          = local.release_url
  release_sha256       = var.release_sha256
  weed_url             = local.weed_url
  weed_sha256          = var.weed_sha256
  coordinator_url      = module.coordinator.url
  join_token           = var.storage_join_token
}

module "nfsd" {
  source               = "../../modules/nfsd"
  count                = var.nfsd_enabled ? 1 : 0
  name                 = "${var.name_prefix}-nfs"
  region               = var.region
  size                 = var.nfsd_size
  ssh_keys             = var.ssh_keys
  ssh_source_addresses = var.ssh_source_addresses
  release_url          = local.release_url
  release_sha256       = var.release_sha256
  coordinator_url      = module.coordinator.url
  join_token           = var.nfsd_join_token
}

module "monitoring" {
  source               = "../../modules/monitoring"
  count                = var.monitoring_enabled ? 1 : 0
  name                 = "${var.name_prefix}-monitoring"
  region               = var.region
  size                 = var.monitoring_size
  ssh_keys             = var.ssh_keys
  ssh_source_addresses = var.ssh_source_addresses
  release_url          = local.release_url
  release_sha256       = var.release_sha256
  coordinator_url      = module.coordinator.url
  join_token           = var.monitoring_join_token
  scrape_token         = var.scrape_token
  registry_ca          = var.registry_ca
}

check "services" {
  assert {
    condition     = !var.storage_enabled || can(regex("^[0-9a-f]{64}$", var.weed_sha256))
    error_message = "storage_enabled needs weed_sha256: the line of weed-linux-amd64.gz in the release's SHA256SUMS."
  }
  assert {
    condition     = !var.monitoring_enabled || (nonsensitive(var.scrape_token != "") && var.registry_ca != "")
    error_message = "monitoring_enabled needs scrape_token and registry_ca (tunnelmesh-tfvars ... monitoring prints both)."
  }
}
