# A TunnelMesh coordinator on a droplet: registry with relay and STUN
# (tunnelmesh-coordinator.service), reached at a reserved IP (and optionally
# a DNS name) that outlives the droplet.

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

resource "digitalocean_droplet" "coordinator" {
  name       = var.name
  region     = var.region
  size       = var.size
  image      = var.image
  ssh_keys   = var.ssh_keys
  vpc_uuid   = var.vpc_uuid
  ipv6       = true
  monitoring = true
  tags       = concat(["tunnelmesh", "tunnelmesh-coordinator"], var.tags)
  user_data  = module.cloudinit.user_data

  lifecycle {
    # The coordinator's state (mesh, nodes, TLS key pinned by every token)
    # lives on its disk: a changed release or config is rolled out on the
    # machine, never by replacing it.
    ignore_changes = [user_data, image]
  }
}

resource "digitalocean_reserved_ip_assignment" "coordinator" {
  ip_address = digitalocean_reserved_ip.coordinator.ip_address
  droplet_id = digitalocean_droplet.coordinator.id
}

resource "digitalocean_record" "coordinator" {
  count  = var.dns_domain == "" ? 0 : 1
  domain = var.dns_domain
  type   = "A"
  name   = var.dns_name
  value  = digitalocean_reserved_ip.coordinator.ip_address
  ttl    = 300
}

resource "digitalocean_firewall" "coordinator" {
  name        = "${var.name}-fw"
  droplet_ids = [digitalocean_droplet.coordinator.id]

  # Registry API and the relay (WebSocket at /relay on the same listener).
  inbound_rule {
    protocol         = "tcp"
    port_range       = tostring(var.api_port)
    source_addresses = ["0.0.0.0/0", "::/0"]
  }
  # STUN: nodes learn their public UDP address.
  inbound_rule {
    protocol         = "udp"
    port_range       = tostring(var.stun_port)
    source_addresses = ["0.0.0.0/0", "::/0"]
  }
  inbound_rule {
    protocol         = "tcp"
    port_range       = "22"
    source_addresses = var.ssh_source_addresses
  }
  inbound_rule {
    protocol         = "icmp"
    source_addresses = ["0.0.0.0/0", "::/0"]
  }

  outbound_rule {
    protocol              = "tcp"
    port_range            = "1-65535"
    destination_addresses = ["0.0.0.0/0", "::/0"]
  }
  outbound_rule {
    protocol              = "udp"
    port_range            = "1-65535"
    destination_addresses = ["0.0.0.0/0", "::/0"]
  }
  outbound_rule {
    protocol              = "icmp"
    destination_addresses = ["0.0.0.0/0", "::/0"]
  }
}
