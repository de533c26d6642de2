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
