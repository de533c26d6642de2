output "name" {
  description = "The droplet name (the node's mesh name)."
  value       = module.node.name
}

output "ipv4_address" {
  description = "The droplet's public IPv4 address."
  value       = module.node.ipv4_address
}

output "ipv6_address" {
  description = "The droplet's public IPv6 address."
  value       = module.node.ipv6_address
}

output "droplet_id" {
  description = "ID of the droplet."
  value       = module.node.droplet_id
}
