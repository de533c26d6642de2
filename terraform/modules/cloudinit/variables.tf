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
  validation {
    condition     = can(regex("^(https?|file)://[^\\s]+$", var.release_url))
    error_message = "release_url must be an http(s):// or file:// URL of tunnelmesh-linux-amd64.tar.gz."
  }
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
  validation {
    condition     = var.public_url == "" || can(regex("^https://[^/\\s]+$", var.public_url))
    error_message = "public_url must be https://HOST:PORT (no path), or empty."
  }
}

variable "api_port" {
  description = "Coordinator only: HTTPS port of the registry API and the relay."
  type        = number
  default     = 8443
  validation {
    condition     = var.api_port >= 1 && var.api_port <= 65535 && floor(var.api_port) == var.api_port
    error_message = "api_port must be a whole number from 1 to 65535."
  }
}

variable "stun_port" {
  description = "Coordinator only: UDP port of the STUN responder."
  type        = number
  default     = 3478
  validation {
    condition     = var.stun_port >= 1 && var.stun_port <= 65535 && floor(var.stun_port) == var.stun_port
    error_message = "stun_port must be a whole number from 1 to 65535."
  }
}

variable "mesh_cidr" {
  description = "Coordinator only: IPv4 prefix node addresses are taken from."
  type        = string
  default     = "100.64.0.0/10"
  validation {
    condition     = can(cidrnetmask(var.mesh_cidr))
    error_message = "mesh_cidr must be an IPv4 prefix such as 100.64.0.0/10."
  }
}

variable "policy" {
  description = "Coordinator only: policy YAML written to /etc/tunnelmesh/policy.yaml and named by policy_file; empty: none (the coordinator's default applies)."
  type        = string
  default     = ""
  validation {
    condition     = var.policy == "" || can(yamldecode(var.policy))
    error_message = "policy must be YAML (a policy file, registry/policy/default.yaml), or empty."
  }
}

variable "coordinator_url" {
  description = "Node only: the coordinator URL, https://HOST:8443."
  type        = string
  default     = ""
  validation {
    condition     = var.coordinator_url == "" || can(regex("^https://[^/\\s]+$", var.coordinator_url))
    error_message = "coordinator_url must be https://HOST:PORT (the coordinator module's url output), no path."
  }
}

variable "join_token" {
  description = "Node only: a single-use join token (tunnelmesh admin tokens create). Empty: the node is installed but not joined (join it by hand)."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = can(regex("^[^\\s]*$", var.join_token))
    error_message = "join_token must be one token as tunnelmesh-tokens prints it (no spaces or line breaks), or empty."
  }
}

variable "listen_port" {
  description = "Node only: the UDP port of the node's tunnels (opened in its firewall)."
  type        = number
  default     = 51820
  validation {
    condition     = var.listen_port >= 1 && var.listen_port <= 65535 && floor(var.listen_port) == var.listen_port
    error_message = "listen_port must be a whole number from 1 to 65535."
  }
}

variable "service_config" {
  description = "storage and nfsd only: the service's YAML (/etc/tunnelmesh/storage.yaml or nfsd.yaml); empty: the defaults (storage: buckets from storage_buckets; nfsd: /srv/nfs/shared read-write for every node)."
  type        = string
  default     = ""
  validation {
    condition     = var.service_config == "" || can(yamldecode(var.service_config))
    error_message = "service_config (storage.config or nfsd.config of modules/node) must be YAML: the whole storage.yaml or nfsd.yaml, or empty for the defaults."
  }
}

variable "storage_buckets" {
  description = "storage only, with the default service_config: buckets created at start, which every node may read and write."
  type        = list(string)
  default     = ["mesh"]
  validation {
    condition     = length(var.storage_buckets) > 0 && alltrue([for b in var.storage_buckets : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", b))])
    error_message = "storage_buckets (storage.buckets of modules/node) must name at least one bucket, each 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "weed_url" {
  description = "storage only: URL of weed-linux-amd64.gz, SeaweedFS's weed binary (a release asset beside the tarball, scripts/release.sh WEED=1)."
  type        = string
  default     = ""
  validation {
    condition     = var.weed_url == "" || can(regex("^(https?|file)://[^\\s]+$", var.weed_url))
    error_message = "weed_url must be an http(s):// or file:// URL of weed-linux-amd64.gz, or empty."
  }
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
  validation {
    condition     = can(regex("^[^\\s]*$", var.scrape_token))
    error_message = "scrape_token must be one token (no spaces or line breaks), or empty."
  }
}

variable "registry_ca" {
  description = "monitoring only: the registry's TLS certificate (PEM; data_dir/tls.crt on the coordinator), trusted by Prometheus for the discovery calls."
  type        = string
  default     = ""
  validation {
    condition     = var.registry_ca == "" || startswith(var.registry_ca, "-----BEGIN CERTIFICATE-----")
    error_message = "registry_ca must be the registry's certificate, PEM (-----BEGIN CERTIFICATE-----...), or empty."
  }
}
