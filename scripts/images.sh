#!/usr/bin/env bash
# Build the TunnelMesh container images: static binaries into bin/ (CGO_ENABLED=0,
# -trimpath, each module with GOWORK=off), then one `docker build` per service from
# the repository root, tagged tunnelmesh/<service>:$TAG (TAG defaults to dev).
#
#   scripts/images.sh                  # every service: registry relay meshdns sshgw agent dockerwatch storage nfsd demo-web
#   scripts/images.sh agent registry   # only these
#   TAG=v0.1 scripts/images.sh
#   GIT_REF=HEAD scripts/images.sh     # binaries from a commit (git archive), not the working tree
#
# Every image is FROM scratch: nothing is pulled, so it works without a registry.
set -euo pipefail

cd "$(dirname "$0")/.."
TAG=${TAG:-dev}
VERSION=${VERSION:-$(git describe --tags --always "${GIT_REF:---dirty}" 2>/dev/null || echo dev)}
GO=${GO:-go}

# service  module    binary  [package  Dockerfile]  (default: ./cmd/BINARY, MODULE/Dockerfile)
SERVICES=(
	"registry registry tunnelmesh-registry"
	"relay    relay    tunnelmesh-relay"
	"meshdns  meshdns  tunnelmesh-meshdns"
	"sshgw    sshgw    tunnelmesh-sshgw"
	"agent    agent    tunnelmesh"
	"dockerwatch dockerwatch tunnelmesh-dockerwatch"
	"storage  storage  tunnelmesh-storage"
	"nfsd     nfsd     tunnelmesh-nfsd"
	# The compose demo's labelled container (and its HTTP client), dockerwatch/demo.
	"demo-web dockerwatch tunnelmesh-demo-web ./demo dockerwatch/demo/Dockerfile"
)

ARGS=("$@")
selected() {
	[ ${#ARGS[@]} -eq 0 ] && return 0
	local w
	for w in "${ARGS[@]}"; do [ "$w" = "$1" ] && return 0; done
	return 1
}

known=" registry relay meshdns sshgw agent dockerwatch storage nfsd demo-web "
for w in "$@"; do
	case "$known" in *" $w "*) ;; *) echo "images.sh: unknown service $w (want:$known)" >&2; exit 2 ;; esac
done

command -v docker >/dev/null || { echo "images.sh: docker not found" >&2; exit 1; }
mkdir -p bin bin/image-empty
src=.
if [ -n "${GIT_REF:-}" ]; then
	src=$(mktemp -d)
	trap 'rm -rf "$src"' EXIT
	git archive --format=tar "$GIT_REF" | tar -x -C "$src"
	echo "== sources of $GIT_REF ($(git rev-parse --short "$GIT_REF"))" >&2
fi
out=$PWD/bin
built=()
for entry in "${SERVICES[@]}"; do
	read -r svc mod binary pkg dockerfile <<<"$entry"
	selected "$svc" || continue
	echo "== bin/$binary" >&2
	(cd "$src/$mod" && CGO_ENABLED=0 GOWORK=off "$GO" build -trimpath \
		-ldflags="-s -w -X main.version=$VERSION -X github.com/tunnelmesh/tunnelmesh/agent/internal/cli.Version=$VERSION" \
		-o "$out/$binary" "${pkg:-./cmd/$binary}")
	if [ "$svc" = storage ]; then
		# SeaweedFS, built once per machine and cached (several minutes the first time).
		cp "$(storage/scripts/build-weed.sh)" "$out/weed"
	fi
	echo "== tunnelmesh/$svc:$TAG" >&2
	docker build --quiet -f "${dockerfile:-$mod/Dockerfile}" -t "tunnelmesh/$svc:$TAG" . >/dev/null
	built+=("tunnelmesh/$svc:$TAG")
done

printf '%-28s %10s\n' IMAGE SIZE
for img in "${built[@]}"; do
	size=$(docker image inspect --format '{{.Size}}' "$img")
	awk -v i="$img" -v s="$size" 'BEGIN { printf "%-28s %8.1f MB\n", i, s / 1e6 }'
done
