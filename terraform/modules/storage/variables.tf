variable "name" {
  description = "Droplet name; also the host name, hence the node's mesh name (<name>.mesh)."
  type        = string
}

variable "region" {
  description = "DigitalOcean region slug, e.g. fra1."
  type        = string
}

variable "size" {
  description = "Droplet size slug. SeaweedFS takes 150 to 250 MiB of memory beside the agent; data lives on the droplet's disk (50 GB on s-1vcpu-2gb)."
  type        = string
  default     = "s-1vcpu-2gb"
}

variable "image" {
  description = "Droplet image slug (Debian or Ubuntu with cloud-init, curl and systemd); amd64: the weed binary is built for amd64."
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
  description = "Extra DigitalOcean tags of the droplet."
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
  description = "A single-use, short-lived join token tagged storage (tunnelmesh-tfvars on the coordinator). It is used at first boot only; later changes are ignored. Empty: installed but not joined."
  type        = string
  default     = ""
  sensitive   = true
}

variable "listen_port" {
  description = "UDP port of the node's tunnels, open to the internet."
  type        = number
  default     = 51820
}

variable "weed_url" {
  description = "URL of weed-linux-amd64.gz, SeaweedFS's weed binary (a release asset: scripts/release.sh WEED=1)."
  type        = string
}

variable "weed_sha256" {
  description = "SHA-256 of weed-linux-amd64.gz (its line in SHA256SUMS)."
  type        = string
}

variable "buckets" {
  description = "Buckets created at start; every node may read, write and list them."
  type        = list(string)
  default     = ["mesh"]
}

variable "storage_config" {
  description = "The whole /etc/tunnelmesh/storage.yaml (examples/storage.example.yaml); empty: the defaults with buckets."
  type        = string
  default     = ""
}
