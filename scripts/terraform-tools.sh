#!/usr/bin/env bash
# Installs terraform 1.5.7 (the last MPL-2.0 release) and tflint into
# $(go env GOPATH)/bin from the Go module proxy, each only when missing, and
# prints the path of terraform. terraform takes about 4 minutes to build.
set -euo pipefail
gobin="$(go env GOPATH)/bin"
tf="$gobin/terraform"
if ! "$tf" version 2>/dev/null | grep -q '^Terraform v1\.5\.7$'; then
	echo "terraform-tools: go install github.com/hashicorp/terraform@v1.5.7 (about 4 minutes)" >&2
	GOFLAGS= CGO_ENABLED=0 go install github.com/hashicorp/terraform@v1.5.7
fi
if [ ! -x "$gobin/tflint" ]; then
	echo "terraform-tools: go install github.com/terraform-linters/tflint@v0.64.0" >&2
	GOFLAGS= CGO_ENABLED=0 go install github.com/terraform-linters/tflint@v0.64.0
fi
echo "$tf"
