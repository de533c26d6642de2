# A TunnelMesh coordinator on a droplet: registry with relay and STUN
# (tunnelmesh-coordinator.service), reached at a reserved IP (and optionally
# a DNS name) that outlives the droplet. The droplet (modules/droplet) opens
# the API and STUN ports besides SSH; its user data runs at first boot only:
# the coordinator's state (mesh, nodes, the TLS key every token pins) lives
# on its disk, and a changed release or config is rolled out on the machine.

locals {
  host = var.dns_domain == "" ? digitalocean_reserved_ip.coordinator.ip_address : "${var.dns_name}.${var.dns_domain}"
  url  = "https://${local.host}:${var.api_port}"
}

resource "digitalocean_reserved_ip" "coordinator" {
  region = var.region
}

module "cloudinit" {
  source         = "../cloudinit"
  role           = "coordinator"
  release_url    = var.release_url
  release_sha256 = var.release_sha256
  policy         = var.policy
  public_url     = local.url
  api_port       = var.api_port
  stun_port      = var.stun_port
  mesh_cidr      = var.mesh_cidr
}

module "droplet" {
  source               = "../droplet"
  name                 = var.name
  region               = var.region
  size                 = var.size
  image                = var.image
  ssh_keys             = var.ssh_keys
  ssh_source_addresses = var.ssh_source_addresses
  vpc_uuid             = var.vpc_uuid
  tags                 = concat(["tunnelmesh", "tunnelmesh-coordinator"], var.tags)
  user_data            = module.cloudinit.user_data
  # The registry API and the relay (WebSocket at /relay on the same
  # listener); STUN, where nodes learn their public UDP address.
  open_ports = [
    { protocol = "tcp", port = var.api_port },
    { protocol = "udp", port = var.stun_port },
  ]
}

resource "digitalocean_reserved_ip_assignment" "coordinator" {
  ip_address = digitalocean_reserved_ip.coordinator.ip_address
  droplet_id = module.droplet.id
}

resource "digitalocean_record" "coordinator" {
  count  = var.dns_domain == "" ? 0 : 1
  domain = var.dns_domain
  type   = "A"
  name   = var.dns_name
  value  = digitalocean_reserved_ip.coordinator.ip_address
  ttl    = 300
}

moved {
  from = digitalocean_droplet.coordinator
  to   = module.droplet.digitalocean_droplet.this
}

moved {
  from = digitalocean_firewall.coordinator
  to   = module.droplet.digitalocean_firewall.this
}
