# A TunnelMesh mesh on DigitalOcean: one coordinator and node_count nodes,
# each installing the release tarball at first boot. See ../../README.md.

locals {
  release_url = var.release_url != "" ? var.release_url : "https://github.com/tunnelmesh/tunnelmesh/releases/download/${var.release_version}/tunnelmesh-linux-amd64.tar.gz"
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
