# A TunnelMesh node on a droplet: tunnelmesh.service, joined at first boot
# with a single-use token, and a firewall that opens its tunnel port. With
# one of storage, nfsd or monitoring set, the node also runs that service
# (its role in modules/cloudinit): the droplet and firewall stay the same,
# the service is reached over the mesh only.

locals {
  # The service the node runs besides tunnelmesh.service, if any. The
  # monitoring object is sensitive (its scrape token); whether it is set is
  # not.
  services = compact([
    var.storage == null ? "" : "storage",
    var.nfsd == null ? "" : "nfsd",
    nonsensitive(var.monitoring == null) ? "" : "monitoring",
  ])
  role = length(local.services) == 0 ? "node" : local.services[0]
  default_size = {
    node       = "s-1vcpu-1gb"
    storage    = "s-1vcpu-2gb"
    nfsd       = "s-1vcpu-1gb"
    monitoring = "s-1vcpu-2gb"
  }
  # The registry's certificate is public; only the scrape token stays sensitive.
  scrape_token   = var.monitoring == null ? "" : var.monitoring.scrape_token
  registry_ca    = var.monitoring == null ? "" : nonsensitive(var.monitoring.registry_ca)
  service_config = var.storage != null ? var.storage.config : var.nfsd != null ? var.nfsd.config : ""
}

module "cloudinit" {
  source          = "../cloudinit"
  role            = local.role
  release_url     = var.release_url
  release_sha256  = var.release_sha256
  coordinator_url = var.coordinator_url
  join_token      = var.join_token
  listen_port     = var.listen_port
  service_config  = local.service_config
  storage_buckets = try(var.storage.buckets, ["mesh"])
  weed_url        = try(var.storage.weed_url, "")
  weed_sha256     = try(var.storage.weed_sha256, "")
  scrape_token    = local.scrape_token
  registry_ca     = local.registry_ca
}

module "droplet" {
  source               = "../droplet"
  name                 = var.name
  region               = var.region
  size                 = coalesce(var.size, local.default_size[local.role])
  image                = var.image
  ssh_keys             = var.ssh_keys
  ssh_source_addresses = var.ssh_source_addresses
  vpc_uuid             = var.vpc_uuid
  tags                 = concat(["tunnelmesh", "tunnelmesh-node"], local.role == "node" ? [] : ["tunnelmesh-${local.role}"], var.tags)
  user_data            = module.cloudinit.user_data
  # Tunnels (Noise over UDP), direct from peers and hole punched.
  open_ports = [{ protocol = "udp", port = var.listen_port }]
}

moved {
  from = digitalocean_droplet.node
  to   = module.droplet.digitalocean_droplet.this
}

moved {
  from = digitalocean_firewall.node
  to   = module.droplet.digitalocean_firewall.this
}
