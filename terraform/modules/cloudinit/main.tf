# Renders the cloud-init user data of a TunnelMesh machine. The YAML is built
# with yamlencode, so every embedded file is quoted correctly whatever it holds.

locals {
  install = templatefile("${path.module}/install.sh.tftpl", {
    release_url    = var.release_url
    release_sha256 = var.release_sha256
    weed_url       = var.weed_url
    weed_sha256    = var.weed_sha256
  })

  # Every role but the coordinator is a node: it joins with the token.
  is_node = var.role != "coordinator"
  join_flags = {
    node       = ""
    storage    = " --advertise-storage"
    nfsd       = " --advertise-nfs"
    monitoring = ""
  }

  policy_path = "/etc/tunnelmesh/policy.yaml"
  # registry/coordinator.example.yaml documents every key.
  coordinator_config = join("\n", compact([
    "listen: \":${var.api_port}\"",
    var.public_url == "" ? "" : "public_url: ${var.public_url}",
    "stun_listen: \":${var.stun_port}\"",
    "mesh_cidr: ${var.mesh_cidr}",
    var.policy == "" ? "" : "policy_file: ${local.policy_path}",
  ]))

  common_files = [
    {
      path        = "/usr/local/sbin/tunnelmesh-install"
      permissions = "0755"
      owner       = "root:root"
      content     = local.install
    },
  ]

  coordinator_files = concat(
    [
      {
        path        = "/etc/tunnelmesh/coordinator.yaml"
        permissions = "0600"
        owner       = "root:root"
        content     = "${local.coordinator_config}\n"
      },
      {
        path        = "/usr/local/sbin/tunnelmesh-tokens"
        permissions = "0755"
        owner       = "root:root"
        content     = file("${path.module}/tunnelmesh-tokens.sh")
      },
      {
        path        = "/usr/local/sbin/tunnelmesh-tfvars"
        permissions = "0755"
        owner       = "root:root"
        content     = file("${path.module}/tunnelmesh-tfvars.sh")
      },
    ],
    var.policy == "" ? [] : [{
      path        = local.policy_path
      permissions = "0600"
      owner       = "root:root"
      content     = var.policy
    }],
  )

  # The first boot joins with the token (join --once: once joined, the
  # same command starts from the saved state, like `tunnelmesh up`).
  node_files = !local.is_node || var.join_token == "" ? [] : [
    {
      path        = "/etc/tunnelmesh/join.token"
      permissions = "0600"
      owner       = "root:root"
      content     = "${var.join_token}\n"
    },
    {
      path        = "/etc/systemd/system/tunnelmesh.service.d/join.conf"
      permissions = "0644"
      owner       = "root:root"
      content     = <<-EOT
        # Written by cloud-init: join with the single-use token at first
        # boot; once joined this starts from the saved state, as `up` does.
        [Service]
        ExecStart=
        ExecStart=/usr/local/bin/tunnelmesh join --once --coordinator ${var.coordinator_url} --token-file /etc/tunnelmesh/join.token --listen-port ${var.listen_port}${local.join_flags[var.role]}
      EOT
    },
  ]

  # storage.yaml: the packaged example's defaults (S3 and the credentials
  # API on the mesh address, data in /var/lib/tunnelmesh/storage), buckets
  # from the variable.
  storage_config = var.service_config != "" ? var.service_config : join("\n", [
    "credentials: /var/lib/tunnelmesh/credentials.json",
    "data_dir: /var/lib/tunnelmesh/storage",
    "listen: mesh",
    "buckets: [${join(", ", var.storage_buckets)}]",
    "weed:",
    "  binary: /usr/local/bin/weed",
    "",
  ])
  # nfsd.yaml: one export, /srv/nfs/shared, read-write for every node.
  nfsd_config = var.service_config != "" ? var.service_config : join("\n", [
    "credentials: /var/lib/tunnelmesh/credentials.json",
    "exports:",
    "  - name: shared",
    "    dir: /srv/nfs/shared",
    "    allow:",
    "      read_write: [\"*\"]",
    "",
  ])
  # Prometheus: observability/prometheus/prometheus.yml pointed at the
  # coordinator, the alert rules, the scrape token and the registry's
  # certificate; the install script moves them into /etc/prometheus once
  # Debian's prometheus package is installed.
  prometheus_config = replace(file("${path.module}/../../../observability/prometheus/prometheus.yml"), "https://coordinator:8443", var.coordinator_url)

  service_files = {
    node = []
    storage = [{
      path        = "/etc/tunnelmesh/storage.yaml"
      permissions = "0600"
      owner       = "root:root"
      content     = local.storage_config
    }]
    nfsd = [{
      path        = "/etc/tunnelmesh/nfsd.yaml"
      permissions = "0600"
      owner       = "root:root"
      content     = local.nfsd_config
    }]
    monitoring = [
      {
        path        = "/etc/tunnelmesh/prometheus/prometheus.yml"
        permissions = "0644"
        owner       = "root:root"
        content     = local.prometheus_config
      },
      {
        path        = "/etc/tunnelmesh/prometheus/tunnelmesh.yml"
        permissions = "0644"
        owner       = "root:root"
        content     = file("${path.module}/../../../observability/alerts/tunnelmesh.yml")
      },
      {
        path        = "/etc/tunnelmesh/prometheus/scrape.token"
        permissions = "0600"
        owner       = "root:root"
        content     = "${var.scrape_token}\n"
      },
      {
        path        = "/etc/tunnelmesh/prometheus/registry.crt"
        permissions = "0644"
        owner       = "root:root"
        content     = var.registry_ca
      },
    ]
  }

  cloud_config = {
    write_files = concat(local.common_files, local.is_node ? concat(local.node_files, local.service_files[var.role]) : local.coordinator_files)
    runcmd      = [["/usr/local/sbin/tunnelmesh-install", var.role]]
  }
}

check "service_inputs" {
  assert {
    condition     = var.role != "storage" || (var.weed_url != "" && var.weed_sha256 != "")
    error_message = "role storage needs weed_url and weed_sha256 (SeaweedFS's weed is not in the release tarball)."
  }
  assert {
    condition     = var.role != "monitoring" || (nonsensitive(var.scrape_token != "") && var.registry_ca != "")
    error_message = "role monitoring needs scrape_token and registry_ca."
  }
}
