# A TunnelMesh node on a droplet: tunnelmesh.service, joined at first boot
# with a single-use token, and a firewall that opens its tunnel port. The
# storage, nfsd and monitoring modules are this module with the user data
# of their role (user_data).

module "cloudinit" {
  source          = "../cloudinit"
  role            = "node"
  release_url     = var.release_url
  release_sha256  = var.release_sha256
  coordinator_url = var.coordinator_url
  join_token      = var.join_token
  listen_port     = var.listen_port
}

resource "digitalocean_droplet" "node" {
  name       = var.name
  region     = var.region
  size       = var.size
  image      = var.image
  ssh_keys   = var.ssh_keys
  vpc_uuid   = var.vpc_uuid
  ipv6       = true
  monitoring = true
  tags       = concat(["tunnelmesh", "tunnelmesh-node"], var.tags)
  user_data  = var.user_data != null ? var.user_data : module.cloudinit.user_data

  lifecycle {
    # The token is spent at first boot: a new token (or none) in a later
    # apply must not replace a joined node.
    ignore_changes = [user_data, image]
  }
}

resource "digitalocean_firewall" "node" {
  name        = "${var.name}-fw"
  droplet_ids = [digitalocean_droplet.node.id]

  # Tunnels (Noise over UDP), direct from peers and hole punched.
  inbound_rule {
    protocol         = "udp"
    port_range       = tostring(var.listen_port)
    source_addresses = ["0.0.0.0/0", "::/0"]
  }
  dynamic "inbound_rule" {
    for_each = length(var.ssh_source_addresses) == 0 ? [] : [1]
    content {
      protocol         = "tcp"
      port_range       = "22"
      source_addresses = var.ssh_source_addresses
    }
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
