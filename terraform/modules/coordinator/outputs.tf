output "url" {
  description = "The coordinator URL nodes join with (tunnelmesh join --coordinator URL)."
  value       = local.url
}

output "ip_address" {
  description = "The coordinator's reserved IPv4 address."
  value       = digitalocean_reserved_ip.coordinator.ip_address
}

output "droplet_id" {
  description = "ID of the coordinator droplet."
  value       = module.droplet.id
}

output "droplet_ipv4" {
  description = "The droplet's own public IPv4 address (SSH works on it and on the reserved IP)."
  value       = module.droplet.ipv4_address
}
