# A TunnelMesh storage node on a droplet: a node joined with a token tagged
# storage and --advertise-storage, running tunnelmesh-storage.service
# (SeaweedFS's weed, downloaded from weed_url and checksum verified) with S3
# on its mesh address. Nodes get credentials with
# `tunnelmesh storage credentials`; the default policy lets every node reach
# tcp 9000 and 9001 on nodes tagged storage, and nodes tagged monitoring its
# /metrics on tcp 9104.

module "cloudinit" {
  source          = "../cloudinit"
  role            = "storage"
  release_url     = var.release_url
  release_sha256  = var.release_sha256
  coordinator_url = var.coordinator_url
  join_token      = var.join_token
  listen_port     = var.listen_port
  service_config  = var.storage_config
  storage_buckets = var.buckets
  weed_url        = var.weed_url
  weed_sha256     = var.weed_sha256
}

module "node" {
  source               = "../node"
  name                 = var.name
  region               = var.region
  size                 = var.size
  image                = var.image
  ssh_keys             = var.ssh_keys
  ssh_source_addresses = var.ssh_source_addresses
  vpc_uuid             = var.vpc_uuid
  tags                 = concat(["tunnelmesh-storage"], var.tags)
  release_url          = var.release_url
  release_sha256       = var.release_sha256
  coordinator_url      = var.coordinator_url
  listen_port          = var.listen_port
  user_data            = module.cloudinit.user_data
}
