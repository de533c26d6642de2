variable "name" {
  description = "Droplet name; also the host name, hence the node's mesh name (<name>.mesh)."
  type        = string
}

variable "region" {
  description = "DigitalOcean region slug, e.g. fra1."
  type        = string
}

variable "size" {
  description = "Droplet size slug."
  type        = string
  default     = "s-1vcpu-1gb"
}

variable "image" {
  description = "Droplet image slug (Debian or Ubuntu with cloud-init, curl and systemd)."
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
  description = "A single-use, short-lived join token for this node (tunnelmesh-tokens on the coordinator). It is used at first boot only; later changes are ignored. Empty: installed but not joined."
  type        = string
  default     = ""
  sensitive   = true
}

variable "listen_port" {
  description = "UDP port of the node's tunnels, open to the internet."
  type        = number
  default     = 51820
}

variable "user_data" {
  description = "The droplet's cloud-init user data, rendered by modules/cloudinit for a node with a service (the storage, nfsd and monitoring modules); null: a plain node's, from the variables above."
  type        = string
  default     = null
  sensitive   = true
}
