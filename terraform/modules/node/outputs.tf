output "name" {
  description = "The node's droplet name (its mesh name)."
  value       = module.droplet.name

  # A droplet runs one service; refused at plan time otherwise.
  precondition {
    condition     = length(local.services) <= 1
    error_message = "set at most one of storage, nfsd and monitoring: a node runs one service (give each its own node)."
  }
}

output "role" {
  description = "What the node runs: node, or the service it runs besides tunnelmesh.service (storage, nfsd or monitoring)."
  value       = local.role
}

output "ipv4_address" {
  description = "The node's public IPv4 address."
  value       = module.droplet.ipv4_address
}

output "ipv6_address" {
  description = "The node's public IPv6 address."
  value       = module.droplet.ipv6_address
}

output "droplet_id" {
  description = "ID of the node droplet."
  value       = module.droplet.id
}
