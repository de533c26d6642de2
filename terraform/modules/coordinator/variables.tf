# Where and how the droplet runs (name to tags) is checked in modules/droplet;
# the release, ports, mesh prefix and policy in modules/cloudinit: a bad
# value is refused at plan time with that module's message.

variable "name" {
  description = "Droplet name (and host name) of the coordinator."
  type        = string
  default     = "tunnelmesh-coordinator"
}

variable "region" {
  description = "DigitalOcean region slug, e.g. fra1."
  type        = string
}

variable "size" {
  description = "Droplet size slug. s-1vcpu-1gb serves hundreds of nodes (the coordinator does not carry traffic unless it relays)."
  type        = string
  default     = "s-1vcpu-1gb"
}

variable "image" {
  description = "Droplet image slug (Debian or Ubuntu with cloud-init, curl and systemd)."
  type        = string
  default     = "debian-12-x64"
}

variable "ssh_keys" {
  description = "IDs or fingerprints of DigitalOcean SSH keys allowed to log in as root (to create join tokens)."
  type        = list(string)
  default     = []
}

variable "ssh_source_addresses" {
  description = "Addresses allowed to reach SSH (22/tcp) on the coordinator (tunnelmesh-tokens and tunnelmesh-tfvars run there); empty: SSH closed."
  type        = list(string)
  default     = ["0.0.0.0/0", "::/0"]
}

variable "vpc_uuid" {
  description = "VPC to place the droplet in; null: the region's default VPC."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra DigitalOcean tags of the droplet (it always has tunnelmesh and tunnelmesh-coordinator)."
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

variable "api_port" {
  description = "HTTPS port of the registry API and the relay (/relay)."
  type        = number
  default     = 8443
}

variable "stun_port" {
  description = "UDP port of the STUN responder."
  type        = number
  default     = 3478
}

variable "mesh_cidr" {
  description = "IPv4 prefix node addresses are taken from."
  type        = string
  default     = "100.64.0.0/10"
}

variable "policy" {
  description = "Policy YAML shipped as the first policy version; empty: the coordinator's default."
  type        = string
  default     = ""
}

variable "dns_domain" {
  description = "A domain managed in DigitalOcean DNS; with dns_name, an A record for the coordinator is made and used in its URL. Empty: no record, the URL uses the reserved IP."
  type        = string
  default     = ""
  validation {
    condition     = var.dns_domain == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.dns_domain))
    error_message = "dns_domain must be a domain name such as example.com (managed in DigitalOcean DNS), or empty."
  }
}

variable "dns_name" {
  description = "Record name in dns_domain, e.g. \"mesh\" for mesh.example.com."
  type        = string
  default     = "mesh"
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.dns_name))
    error_message = "dns_name must be one DNS label such as mesh."
  }
}
