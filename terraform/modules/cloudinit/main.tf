# Renders the cloud-init user data of a TunnelMesh machine. The YAML is built
# with yamlencode, so every embedded file is quoted correctly whatever it holds.

locals {
  install = templatefile("${path.module}/install.sh.tftpl", {
    release_url    = var.release_url
    release_sha256 = var.release_sha256
  })

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
  node_files = var.join_token == "" ? [] : [
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
        ExecStart=/usr/local/bin/tunnelmesh join --once --coordinator ${var.coordinator_url} --token-file /etc/tunnelmesh/join.token --listen-port ${var.listen_port}
      EOT
    },
  ]

  cloud_config = {
    write_files = concat(local.common_files, var.role == "coordinator" ? local.coordinator_files : local.node_files)
    runcmd      = [["/usr/local/sbin/tunnelmesh-install", var.role]]
  }
}
