# TunnelMesh: one Makefile that fans out over every Go module (each dir with a go.mod).
# Every module is built and tested with GOWORK=off, so each go.mod is complete on its own.

SHELL        := /bin/bash
MODULES      := $(sort $(patsubst %/go.mod,%,$(wildcard */go.mod)))
BIN          := $(CURDIR)/bin
GO           ?= go
TEST_FLAGS   ?= -count=1 -timeout 20m
STATICCHECK  := $(shell $(GO) env GOPATH)/bin/staticcheck
TESTLOGS     := $(CURDIR)/.test-logs
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS      := -s -w -X main.version=$(VERSION) -X github.com/tunnelmesh/tunnelmesh/agent/internal/cli.Version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: all build test test-unit test-deploy lint fmt vet staticcheck bench deps binaries demo demo-down clean tidy images \
	release terraform-validate cloudinit-check

all: build

## deps: install what the tests need (apt packages, Go tools); idempotent
deps:
	@scripts/install-deps.sh

## build: compile every module
build:
	@set -e; for m in $(MODULES); do echo "== build $$m"; (cd $$m && GOWORK=off $(GO) build ./...); done

## binaries: static binaries of every command into ./bin
binaries:
	@mkdir -p $(BIN)
	@set -e; for m in $(MODULES); do \
	  for c in $$m/cmd/*/; do [ -d "$$c" ] || continue; \
	    echo "== bin/$$(basename $$c)"; \
	    (cd $$m && GOWORK=off $(GO) build -trimpath -ldflags='$(LDFLAGS)' -o $(BIN)/$$(basename $$c) ./cmd/$$(basename $$c)); \
	  done; done

## demo: the main job, a working demo mesh in Docker (see compose/README.md)
demo:
	@scripts/demo.sh

demo-down:
	@scripts/compose.sh down -v

## images: static binaries and the FROM scratch images tunnelmesh/<service>:dev
images:
	@scripts/images.sh

## release: dist/tunnelmesh-linux-{amd64,arm64}.tar.gz and dist/SHA256SUMS (packaging/README.md)
release:
	@VERSION=$(VERSION) OUT=dist scripts/release.sh

## test: everything CI runs: deps, lint, every module's tests (root-only tests run for real as root,
## agent/internal/releasetest runs the release tarball), then the deployment checks
test: deps lint test-unit test-deploy

## test-deploy: the Terraform modules (offline) and the droplets' cloud-init (terraform/README.md)
test-deploy: terraform-validate cloudinit-check

## terraform-validate: fmt, init from ../shared/terraform/mirror, validate, tflint, plan (offline)
terraform-validate:
	@scripts/terraform-validate.sh

## cloudinit-check: render cloud-init, cloud-init schema, install in a Debian chroot, units verified (root)
cloudinit-check:
	@scripts/cloudinit-check.sh

## test-unit: every module's tests; go test's ok/FAIL lines and failures as usual, the full
## output as JSON in .test-logs/MODULE.json, and at the end every skipped test and why.
## With CI=true (.ci/run) a test that lacks root, Docker or a tool fails instead of skipping.
test-unit:
	@mkdir -p $(BIN) $(TESTLOGS) && rm -f $(TESTLOGS)/*.json
	@cd testkit && GOWORK=off $(GO) build -o $(BIN)/testreport ./testenv/testreport
	@set -o pipefail; rc=0; for m in $(MODULES); do echo "== test $$m"; \
	  (cd $$m && GOWORK=off $(GO) test -json $(TEST_FLAGS) ./... 2>&1) | $(BIN)/testreport -log $(TESTLOGS)/$$m.json || rc=1; \
	done; \
	$(BIN)/testreport -skips $(TESTLOGS)/*.json; \
	if [ $$rc -ne 0 ]; then echo "== test: FAIL (whole output: .test-logs/MODULE.json)"; fi; \
	exit $$rc

## lint: gofmt, go vet, staticcheck over every module
lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	@set -e; for m in $(MODULES); do echo "== vet $$m"; (cd $$m && GOWORK=off $(GO) vet ./...); done

staticcheck:
	@set -e; for m in $(MODULES); do echo "== staticcheck $$m"; (cd $$m && GOWORK=off $(STATICCHECK) ./...); done

## bench: Go benchmarks of every module (see each module's README for the table-printing bench scripts)
bench:
	@set -e; for m in $(MODULES); do echo "== bench $$m"; (cd $$m && GOWORK=off $(GO) test -run '^$$' -bench . -benchmem ./...); done

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy); done

clean:
	rm -rf $(BIN) dist
