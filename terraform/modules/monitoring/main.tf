# TunnelMesh monitoring on a droplet: a node joined with a token tagged
# monitoring, running Debian's prometheus with
# observability/prometheus/prometheus.yml (targets from the registry's
# HTTP service discovery) and observability/alerts/tunnelmesh.yml. The
# default policy lets nodes tagged monitoring scrape the agents and meshdns
# over the mesh. Prometheus listens on 9090, closed by the firewall:
# ssh -L 9090:127.0.0.1:9090 root@IP.

module "cloudinit" {
  source          = "../cloudinit"
  role            = "monitoring"
  release_url     = var.release_url
  release_sha256  = var.release_sha256
  coordinator_url = var.coordinator_url
  join_token      = var.join_token
  listen_port     = var.listen_port
  scrape_token    = var.scrape_token
  registry_ca     = var.registry_ca
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
  tags                 = concat(["tunnelmesh-monitoring"], var.tags)
  release_url          = var.release_url
  release_sha256       = var.release_sha256
  coordinator_url      = var.coordinator_url
  listen_port          = var.listen_port
  user_data            = module.cloudinit.user_data
}
