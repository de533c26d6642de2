variable "role" {
  description = "What the machine runs: \"coordinator\" (tunnelmesh-coordinator.service), \"node\" (tunnelmesh.service), or a node with a service: \"storage\" (tunnelmesh-storage.service, SeaweedFS), \"nfsd\" (tunnelmesh-nfsd.service), \"monitoring\" (Debian's prometheus)."
  type        = string
  validation {
    condition     = contains(["coordinator", "node", "storage", "nfsd", "monitoring"], var.role)
    error_message = "role must be \"coordinator\", \"node\", \"storage\", \"nfsd\" or \"monitoring\"."
  }
}

variable "release_url" {
  description = "URL of the release tarball (tunnelmesh-linux-amd64.tar.gz) the machine downloads at first boot."
  type        = string
}

variable "release_sha256" {
  description = "SHA-256 of the tarball, as in the release's SHA256SUMS; the install stops when the download does not match."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.release_sha256))
    error_message = "release_sha256 must be 64 lowercase hex digits (a line of SHA256SUMS)."
  }
}

variable "public_url" {
  description = "Coordinator only: how nodes reach it, https://HOST:PORT (public_url in coordinator.yaml); empty: not set."
  type        = string
  default     = ""
}

variable "api_port" {
  description = "Coordinator only: HTTPS port of the registry API and the relay."
  type        = number
  default     = 8443
}

variable "stun_port" {
  description = "Coordinator only: UDP port of the STUN responder."
  type        = number
  default     = 3478
}

variable "mesh_cidr" {
  description = "Coordinator only: IPv4 prefix node addresses are taken from."
  type        = string
  default     = "100.64.0.0/10"
}

variable "policy" {
  description = "Coordinator only: policy YAML written to /etc/tunnelmesh/policy.yaml and named by policy_file; empty: none (the coordinator's default applies)."
  type        = string
  default     = ""
}

variable "coordinator_url" {
  description = "Node only: the coordinator URL, https://HOST:8443."
  type        = string
  default     = ""
}

variable "join_token" {
  description = "Node only: a single-use join token (tunnelmesh admin tokens create). Empty: the node is installed but not joined (join it by hand)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "listen_port" {
  description = "Node only: the UDP port of the node's tunnels (opened in its firewall)."
  type        = number
  default     = 51820
}

variable "service_config" {
  description = "storage and nfsd only: the service's YAML (/etc/tunnelmesh/storage.yaml or nfsd.yaml); empty: the defaults (storage: buckets from storage_buckets; nfsd: /srv/nfs/shared read-write for every node)."
  type        = string
  default     = ""
}

variable "storage_buckets" {
  description = "storage only, with the default service_config: buckets created at start, which every node may read and write."
  type        = list(string)
  default     = ["mesh"]
}

variable "weed_url" {
  description = "storage only: URL of weed-linux-amd64.gz, SeaweedFS's weed binary (a release asset beside the tarball, scripts/release.sh WEED=1)."
  type        = string
  default     = ""
}

variable "weed_sha256" {
  description = "storage only: SHA-256 of weed-linux-amd64.gz (its line in SHA256SUMS)."
  type        = string
  default     = ""
  validation {
    condition     = var.weed_sha256 == "" || can(regex("^[0-9a-f]{64}$", var.weed_sha256))
    error_message = "weed_sha256 must be 64 lowercase hex digits (a line of SHA256SUMS)."
  }
}

variable "scrape_token" {
  description = "monitoring only: a Prometheus scrape token (tunnelmesh admin scrape-tokens create) for the registry's service discovery."
  type        = string
  default     = ""
  sensitive   = true
}

variable "registry_ca" {
  description = "monitoring only: the registry's TLS certificate (PEM; data_dir/tls.crt on the coordinator), trusted by Prometheus for the discovery calls."
  type        = string
  default     = ""
}
