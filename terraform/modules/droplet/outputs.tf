output "id" {
  description = "ID of the droplet."
  value       = digitalocean_droplet.this.id
}

output "name" {
  description = "The droplet name (its host name)."
  value       = digitalocean_droplet.this.name
}

output "ipv4_address" {
  description = "The droplet's public IPv4 address."
  value       = digitalocean_droplet.this.ipv4_address
}

output "ipv6_address" {
  description = "The droplet's public IPv6 address."
  value       = digitalocean_droplet.this.ipv6_address
}
