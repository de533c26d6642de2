# A droplet and its firewall, the machine under every TunnelMesh role: the
# coordinator and node modules give it their user data and the ports they
# open to the internet. SSH (from ssh_source_addresses) and ICMP are open,
# everything outbound is allowed.

locals {
  anywhere = ["0.0.0.0/0", "::/0"]
}

resource "digitalocean_droplet" "this" {
  name       = var.name
  region     = var.region
  size       = var.size
  image      = var.image
  ssh_keys   = var.ssh_keys
  vpc_uuid   = var.vpc_uuid
  ipv6       = true
  monitoring = true
  tags       = var.tags
  user_data  = var.user_data

  lifecycle {
    # The user data runs at first boot only: a node's token is spent then,
    # and the coordinator's state lives on its disk. A changed release,
    # config or token is rolled out on the machine, never by replacing it.
    ignore_changes = [user_data, image]
  }
}

resource "digitalocean_firewall" "this" {
  name        = "${var.name}-fw"
  droplet_ids = [digitalocean_droplet.this.id]

  dynamic "inbound_rule" {
    for_each = var.open_ports
    content {
      protocol         = inbound_rule.value.protocol
      port_range       = tostring(inbound_rule.value.port)
      source_addresses = local.anywhere
    }
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
    source_addresses = local.anywhere
  }

  dynamic "outbound_rule" {
    for_each = ["tcp", "udp"]
    content {
      protocol              = outbound_rule.value
      port_range            = "1-65535"
      destination_addresses = local.anywhere
    }
  }
  outbound_rule {
    protocol              = "icmp"
    destination_addresses = local.anywhere
  }
}
