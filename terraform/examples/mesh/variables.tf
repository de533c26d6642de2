variable "do_token" {
  description = "DigitalOcean API token (or set DIGITALOCEAN_TOKEN and pass any value)."
  type        = string
  sensitive   = true
}

variable "region" {
  description = "DigitalOcean region slug."
  type        = string
  default     = "fra1"
}

variable "release_version" {
  description = "TunnelMesh release to install, e.g. v0.1.0 (used in the default release URL)."
  type        = string
}

variable "release_url" {
  description = "URL of tunnelmesh-linux-amd64.tar.gz; empty: the GitHub release of release_version."
  type        = string
  default     = ""
}

variable "release_sha256" {
  description = "SHA-256 of the tarball: its line in the release's SHA256SUMS."
  type        = string
}

variable "node_count" {
  description = "Number of nodes. Each new node needs a join token in join_tokens."
  type        = number
  default     = 0
  validation {
    condition     = var.node_count >= 0 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number, 0 or more."
  }
}

variable "join_tokens" {
  description = "Single-use, short-lived join tokens, one per node in order (tunnelmesh-tokens N on the coordinator prints them as a JSON list). Used at a node's first boot only."
  type        = list(string)
  default     = []
  sensitive   = true
}

variable "coordinator_size" {
  description = "Droplet size of the coordinator."
  type        = string
  default     = "s-1vcpu-1gb"
}

variable "node_size" {
  description = "Droplet size of each node."
  type        = string
  default     = "s-1vcpu-1gb"
}

variable "ssh_keys" {
  description = "IDs or fingerprints of DigitalOcean SSH keys for root on every droplet."
  type        = list(string)
  default     = []
}

variable "ssh_source_addresses" {
  description = "Addresses allowed to reach SSH on the droplets."
  type        = list(string)
  default     = ["0.0.0.0/0", "::/0"]
}

variable "dns_domain" {
  description = "Optional DigitalOcean DNS domain for an A record of the coordinator (dns_name.dns_domain)."
  type        = string
  default     = ""
}

variable "dns_name" {
  description = "Record name of the coordinator in dns_domain."
  type        = string
  default     = "mesh"
}

variable "name_prefix" {
  description = "Prefix of droplet names: <prefix>-coordinator, <prefix>-node-1, ..."
  type        = string
  default     = "tunnelmesh"
}
