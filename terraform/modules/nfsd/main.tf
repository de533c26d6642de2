# A TunnelMesh NFS server on a droplet: a node joined with a token tagged
# nfs and --advertise-nfs, running tunnelmesh-nfsd.service: NFSv3 on its
# mesh address (tcp 2049, port mapper 111), nfs.mesh in mesh DNS. Nothing
# NFS is open on the droplet's public addresses.

module "cloudinit" {
  source          = "../cloudinit"
  role            = "nfsd"
  release_url     = var.release_url
  release_sha256  = var.release_sha256
  coordinator_url = var.coordinator_url
  join_token      = var.join_token
  listen_port     = var.listen_port
  service_config  = var.nfsd_config
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
  tags                 = concat(["tunnelmesh-nfsd"], var.tags)
  release_url          = var.release_url
  release_sha256       = var.release_sha256
  coordinator_url      = var.coordinator_url
  listen_port          = var.listen_port
  user_data            = module.cloudinit.user_data
}
