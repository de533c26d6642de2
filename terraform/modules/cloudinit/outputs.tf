output "user_data" {
  description = "The cloud-init user data (#cloud-config); holds the join token of a node."
  value       = "#cloud-config\n${yamlencode(local.cloud_config)}"
  sensitive   = true
}
