# tflint with its bundled Terraform ruleset only (works offline): every rule
# of the "all" preset, e.g. documented and typed variables and outputs,
# pinned provider versions, the standard module structure.
plugin "terraform" {
  enabled = true
  preset  = "all"
}
