output "coordinator_url" {
  description = "The coordinator URL (tunnelmesh join --coordinator URL)."
  value       = module.coordinator.url
}

output "coordinator_ip" {
  description = "The coordinator's reserved IP (ssh root@IP tunnelmesh-tokens N)."
  value       = module.coordinator.ip_address
}

output "nodes" {
  description = "Each node's name and public addresses."
  value = { for n in module.node : n.name => {
    ipv4 = n.ipv4_address
    ipv6 = n.ipv6_address
  } }
}

output "services" {
  description = "The optional services' droplets: name and public IPv4 address (null when off)."
  value = {
    storage    = try({ name = module.storage[0].name, ipv4 = module.storage[0].ipv4_address }, null)
    nfsd       = try({ name = module.nfsd[0].name, ipv4 = module.nfsd[0].ipv4_address }, null)
    monitoring = try({ name = module.monitoring[0].name, ipv4 = module.monitoring[0].ipv4_address }, null)
  }
}
