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
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._+-]*$", var.release_version))
    error_message = "release_version must be a release tag such as v0.1.0."
  }
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
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$", var.name_prefix))
    error_message = "name_prefix must be 1 to 42 lowercase letters, digits and hyphens, not starting or ending with a hyphen (droplet names are <prefix>-coordinator, <prefix>-node-N, ...: DNS labels)."
  }
}

variable "storage_enabled" {
  description = "Add a storage droplet (tunnelmesh-storage: S3 over the mesh, SeaweedFS). Needs storage_join_token and weed_sha256."
  type        = bool
  default     = false
}

variable "storage_join_token" {
  description = "Single-use join token tagged storage for the storage droplet (tunnelmesh-tfvars N storage)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "storage_size" {
  description = "Droplet size of the storage node."
  type        = string
  default     = "s-1vcpu-2gb"
}

variable "weed_url" {
  description = "URL of weed-linux-amd64.gz (SeaweedFS's weed, a release asset); empty: the GitHub release of release_version."
  type        = string
  default     = ""
}

variable "weed_sha256" {
  description = "SHA-256 of weed-linux-amd64.gz: its line in the release's SHA256SUMS (storage only)."
  type        = string
  default     = ""
}

variable "nfsd_enabled" {
  description = "Add an NFS server droplet (tunnelmesh-nfsd, /srv/nfs/shared for every node). Needs nfsd_join_token."
  type        = bool
  default     = false
}

variable "nfsd_join_token" {
  description = "Single-use join token tagged nfs for the NFS droplet (tunnelmesh-tfvars N nfsd)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "nfsd_size" {
  description = "Droplet size of the NFS server."
  type        = string
  default     = "s-1vcpu-1gb"
}

variable "monitoring_enabled" {
  description = "Add a monitoring droplet (Debian's Prometheus with the repository's configuration and alert rules). Needs monitoring_join_token, scrape_token and registry_ca."
  type        = bool
  default     = false
}

variable "monitoring_join_token" {
  description = "Single-use join token tagged monitoring for the monitoring droplet (tunnelmesh-tfvars N monitoring)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "scrape_token" {
  description = "Prometheus's scrape token for the registry's service discovery (tunnelmesh-tfvars N monitoring)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "registry_ca" {
  description = "The registry's TLS certificate, PEM (tunnelmesh-tfvars N monitoring prints it)."
  type        = string
  default     = ""
}

variable "monitoring_size" {
  description = "Droplet size of the monitoring node."
  type        = string
  default     = "s-1vcpu-2gb"
}
