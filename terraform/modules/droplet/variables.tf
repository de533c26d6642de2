# Every check of where and how a machine runs lives here; the coordinator and
# node modules pass these through, so a bad value is refused at plan time
# with the message below, whichever module it was given to.

variable "name" {
  description = "Droplet name and host name: one DNS label (a node's mesh name is <name>.mesh)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.name))
    error_message = "name must be one DNS label: 1 to 63 lowercase letters, digits and hyphens, not starting or ending with a hyphen (it is the host name and the mesh name)."
  }
}

variable "region" {
  description = "DigitalOcean region slug, e.g. fra1."
  type        = string
  validation {
    condition     = can(regex("^[a-z]{3}[0-9]$", var.region))
    error_message = "region must be a DigitalOcean region slug such as fra1, ams3 or nyc3."
  }
}

variable "size" {
  description = "Droplet size slug, e.g. s-1vcpu-1gb."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]*$", var.size))
    error_message = "size must be a DigitalOcean size slug such as s-1vcpu-1gb (lowercase, no spaces)."
  }
}

variable "image" {
  description = "Droplet image: a slug (Debian or Ubuntu with cloud-init, curl and systemd) or an image ID."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]*$", var.image))
    error_message = "image must be a DigitalOcean image slug such as debian-12-x64, or an image ID."
  }
}

variable "ssh_keys" {
  description = "IDs or fingerprints of DigitalOcean SSH keys allowed to log in as root."
  type        = list(string)
  validation {
    condition     = alltrue([for k in var.ssh_keys : can(regex("^([0-9]+|[0-9a-f]{2}(:[0-9a-f]{2}){15})$", k))])
    error_message = "ssh_keys must be DigitalOcean SSH key IDs (digits) or MD5 fingerprints (aa:bb:...:ff)."
  }
}

variable "ssh_source_addresses" {
  description = "Addresses or prefixes allowed to reach SSH (22/tcp); empty: SSH closed."
  type        = list(string)
  validation {
    condition     = alltrue([for a in var.ssh_source_addresses : can(cidrhost(a, 0)) || can(cidrhost("${a}/32", 0)) || can(cidrhost("${a}/128", 0))])
    error_message = "ssh_source_addresses must be IP addresses or prefixes, e.g. 192.0.2.0/24, 2001:db8::1 or 0.0.0.0/0."
  }
}

variable "vpc_uuid" {
  description = "VPC to place the droplet in; null: the region's default VPC."
  type        = string
  validation {
    condition     = var.vpc_uuid == null || can(regex("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.vpc_uuid))
    error_message = "vpc_uuid must be a VPC's UUID (8-4-4-4-12 lowercase hex digits), or null."
  }
}

variable "tags" {
  description = "DigitalOcean tags of the droplet."
  type        = list(string)
  validation {
    condition     = alltrue([for t in var.tags : can(regex("^[A-Za-z0-9_:-]{1,255}$", t))])
    error_message = "tags must be 1 to 255 letters, digits, colons, hyphens and underscores each (DigitalOcean's tag names)."
  }
}

variable "user_data" {
  description = "Cloud-init user data (modules/cloudinit); read at first boot only, later changes are ignored."
  type        = string
  sensitive   = true
}

variable "open_ports" {
  description = "Ports open to the whole internet besides SSH and ICMP, e.g. [{ protocol = \"udp\", port = 51820 }]."
  type = list(object({
    protocol = string
    port     = number
  }))
  validation {
    condition     = alltrue([for p in var.open_ports : contains(["tcp", "udp"], p.protocol) && p.port >= 1 && p.port <= 65535 && floor(p.port) == p.port])
    error_message = "open_ports: protocol must be tcp or udp and port a whole number from 1 to 65535."
  }
}
