output "name" {
  description = "The node's droplet name (its mesh name)."
  value       = digitalocean_droplet.node.name
}

output "ipv4_address" {
  description = "The node's public IPv4 address."
  value       = digitalocean_droplet.node.ipv4_address
}

output "ipv6_address" {
  description = "The node's public IPv6 address."
  value       = digitalocean_droplet.node.ipv6_address
}

output "droplet_id" {
  description = "ID of the node droplet."
  value       = digitalocean_droplet.node.id
}
