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

# Optional services: each a node (modules/node) running one service on a
# droplet of its own, joined with a token of the service's tag
# (tunnelmesh-tfvars on the coordinator prints them all).

module "storage" {
  source               = "../../modules/node"
  count                = var.storage_enabled ? 1 : 0
  name                 = "${var.name_prefix}-storage"
  region               = var.region
  size                 = var.storage_size
  ssh_keys             = var.ssh_keys
  ssh_source_addresses = var.ssh_source_addresses
  release_url          = local.release_url
  release_sha256       = var.release_sha256
  coordinator_url      = module.coordinator.url
  join_token           = var.storage_join_token
  storage = {
    weed_url    = local.weed_url
    weed_sha256 = var.weed_sha256
  }
}

module "nfsd" {
  source               = "../../modules/node"
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
  nfsd                 = {}
}

module "monitoring" {
  source               = "../../modules/node"
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
  monitoring = {
    scrape_token = var.scrape_token
    registry_ca  = var.registry_ca
  }
}

# The services' droplets were modules/storage, nfsd and monitoring wrapping
# modules/node: the same machines, moved rather than replaced (a storage or
# NFS droplet holds data). modules/node moves them on into modules/droplet.
moved {
  from = module.storage[0].module.node.digitalocean_droplet.node
  to   = module.storage[0].digitalocean_droplet.node
}
moved {
  from = module.storage[0].module.node.digitalocean_firewall.node
  to   = module.storage[0].digitalocean_firewall.node
}
moved {
  from = module.nfsd[0].module.node.digitalocean_droplet.node
  to   = module.nfsd[0].digitalocean_droplet.node
}
moved {
  from = module.nfsd[0].module.node.digitalocean_firewall.node
  to   = module.nfsd[0].digitalocean_firewall.node
}
moved {
  from = module.monitoring[0].module.node.digitalocean_droplet.node
  to   = module.monitoring[0].digitalocean_droplet.node
}
moved {
  from = module.monitoring[0].module.node.digitalocean_firewall.node
  to   = module.monitoring[0].digitalocean_firewall.node
}
