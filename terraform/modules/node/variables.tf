# The droplet's inputs (name to tags) are checked in modules/droplet, the
# release, coordinator URL, token, port and the services' fields in
# modules/cloudinit: a bad value is refused at plan time with that module's
# message. Here: what a service needs.

variable "name" {
  description = "Droplet name; also the host name, hence the node's mesh name (<name>.mesh): one DNS label."
  type        = string
}

variable "region" {
  description = "DigitalOcean region slug, e.g. fra1."
  type        = string
}

variable "size" {
  description = "Droplet size slug; null: s-1vcpu-1gb, or s-1vcpu-2gb with storage (SeaweedFS takes 150 to 250 MiB beside the agent) or monitoring (Prometheus's memory grows with the series)."
  type        = string
  default     = null
}

variable "image" {
  description = "Droplet image slug (Debian or Ubuntu with cloud-init, curl and systemd); amd64, for the release tarball (and storage's weed binary); Debian for monitoring (its prometheus package)."
  type        = string
  default     = "debian-12-x64"
}

variable "ssh_keys" {
  description = "IDs or fingerprints of DigitalOcean SSH keys allowed to log in as root."
  type        = list(string)
  default     = []
}

variable "ssh_source_addresses" {
  description = "Addresses allowed to reach SSH (22/tcp); empty: SSH closed (reach the node over the mesh)."
  type        = list(string)
  default     = ["0.0.0.0/0", "::/0"]
}

variable "vpc_uuid" {
  description = "VPC to place the droplet in; null: the region's default VPC."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra DigitalOcean tags of the droplet (it always has tunnelmesh, tunnelmesh-node and, with a service, tunnelmesh-<service>)."
  type        = list(string)
  default     = []
}

variable "release_url" {
  description = "URL of tunnelmesh-linux-amd64.tar.gz."
  type        = string
}

variable "release_sha256" {
  description = "SHA-256 of the tarball (its line in the release's SHA256SUMS)."
  type        = string
}

variable "coordinator_url" {
  description = "The coordinator URL, https://HOST:8443 (the coordinator module's url output)."
  type        = string
}

variable "join_token" {
  description = "A single-use, short-lived join token for this node (tunnelmesh-tokens on the coordinator; for a service, one with the service's tag: storage, nfs or monitoring, as tunnelmesh-tfvars prints). It is used at first boot only; later changes are ignored. Empty: installed but not joined."
  type        = string
  default     = ""
  sensitive   = true
}

variable "listen_port" {
  description = "UDP port of the node's tunnels, open to the internet."
  type        = number
  default     = 51820
}

variable "storage" {
  description = "Run tunnelmesh-storage (S3 on the mesh address, SeaweedFS) on this node, joined with --advertise-storage. weed_url: weed-linux-amd64.gz (a release asset: scripts/release.sh WEED=1); weed_sha256: its line in SHA256SUMS; buckets: created at start, every node may read, write and list them; config: the whole /etc/tunnelmesh/storage.yaml (storage/README.md), empty: the defaults with buckets. null: no storage."
  type = object({
    weed_url    = string
    weed_sha256 = string
    buckets     = optional(list(string), ["mesh"])
    config      = optional(string, "")
  })
  default = null
  validation {
    condition     = var.storage == null || try(var.storage.weed_url != "" && var.storage.weed_sha256 != "", false)
    error_message = "storage needs weed_url and weed_sha256 (the line of weed-linux-amd64.gz in the release's SHA256SUMS): SeaweedFS's weed is not in the release tarball."
  }
}

variable "nfsd" {
  description = "Run tunnelmesh-nfsd (NFSv3 on the mesh address, nfs.mesh in mesh DNS) on this node, joined with --advertise-nfs. config: the whole /etc/tunnelmesh/nfsd.yaml (nfsd/nfsd.example.yaml; exports outside /srv/nfs need a ReadWritePaths drop-in), empty: /srv/nfs/shared, read-write for every node. null: no NFS server; {}: the default export."
  type = object({
    config = optional(string, "")
  })
  default = null
}

variable "monitoring" {
  description = "Run Debian's prometheus with observability/prometheus/prometheus.yml (targets from the registry's service discovery) and observability/alerts/tunnelmesh.yml on this node. scrape_token: Prometheus's credential (tunnelmesh admin scrape-tokens create; tunnelmesh-tfvars makes one); registry_ca: the registry's TLS certificate, PEM (data_dir/tls.crt on the coordinator; tunnelmesh-tfvars prints it). null: no monitoring."
  type = object({
    scrape_token = string
    registry_ca  = string
  })
  default   = null
  sensitive = true
  # One attribute a rule: a failed rule shows the values it read.
  validation {
    condition     = var.monitoring == null || try(var.monitoring.scrape_token != "", false)
    error_message = "monitoring needs scrape_token (tunnelmesh-tfvars ... monitoring prints one)."
  }
  validation {
    condition     = var.monitoring == null || try(var.monitoring.registry_ca != "", false)
    error_message = "monitoring needs registry_ca, the registry's certificate (tunnelmesh-tfvars ... monitoring prints it)."
  }
}
