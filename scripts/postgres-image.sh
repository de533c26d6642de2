#!/usr/bin/env bash
# Build tunnelmesh/postgres:$TAG (TAG defaults to dev) for the compose `ha`
# profile: Debian's postgresql (the host's /usr/lib/postgresql/*/bin, from
# scripts/install-deps.sh) with its share files, the libraries it links and
# a shell for initdb and the entrypoint, staged in bin/postgres-image, then
# compose/postgres/Dockerfile FROM scratch. Nothing is pulled.
#
#   scripts/postgres-image.sh
set -euo pipefail

cd "$(dirname "$0")/.."
TAG=${TAG:-dev}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pgbin" ] || [ ! -x "$pgbin/postgres" ]; then
	[ "$(id -u)" -eq 0 ] || { echo "postgres-image.sh: PostgreSQL not found; as root: apt-get install --no-install-recommends postgresql" >&2; exit 1; }
	echo "postgres-image.sh: apt-get install postgresql" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends postgresql >/dev/null
	pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
command -v docker >/dev/null || { echo "postgres-image.sh: docker not found" >&2; exit 1; }
ver=$(basename "$(dirname "$pgbin")")

# The build context is bin/postgres-image: root/ (the image's files) and
# empty/ (directories owned by postgres, uid 70, in the image).
ctx=bin/postgres-image
root=$ctx/root
rm -rf "$ctx"
mkdir -p "$ctx/empty"
mkdir -p "$root$pgbin" "$root/usr/share/postgresql" "$root/bin" "$root/usr/bin" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
bins=("$pgbin/postgres" "$pgbin/initdb" "$pgbin/pg_isready")
for b in "${bins[@]}"; do cp "$b" "$root$b"; done
mkdir -p "$root/usr/local/bin"
ln -s "$pgbin/pg_isready" "$root/usr/local/bin/pg_isready" # for healthchecks
# initdb runs postgres through /bin/sh; the entrypoint makes the password
# file with od, tr, chmod and mv.
tools=(/bin/sh)
for t in od tr chmod mv; do tools+=("/usr/bin/$t"); done
for b in "${tools[@]}"; do cp -L "$b" "$root$b"; done
cp -r "/usr/share/postgresql/$ver" "$root/usr/share/postgresql/"
# The server's modules ($libdir; not the LLVM JIT) and the time zones.
mkdir -p "$root/usr/lib/postgresql/$ver/lib"
for so in /usr/lib/postgresql/"$ver"/lib/*.so; do
	case $(basename "$so") in llvmjit*) continue ;; esac
	cp "$so" "$root/usr/lib/postgresql/$ver/lib/"
	tools+=("$so")
done
[ -d /usr/share/zoneinfo ] && cp -r /usr/share/zoneinfo "$root/usr/share/"
rm -rf "$root/usr/share/postgresql/$ver/man"
# The dynamic loader and every library ldd lists, at the same paths.
for b in "${bins[@]}" "${tools[@]}"; do
	for lib in $(ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
		[ -e "$root$lib" ] || cp --parents -L "$lib" "$root/"
	done
done
echo "postgres:x:70:70:PostgreSQL:/var/lib/postgresql:/bin/sh" >"$root/etc/passwd"
echo "postgres:x:70:" >"$root/etc/group"
sed "s#@PGBIN@#$pgbin#g" compose/postgres/entrypoint.sh >"$root/entrypoint.sh"
chmod 755 "$root/entrypoint.sh"

echo "== tunnelmesh/postgres:$TAG ($("$pgbin/postgres" --version))" >&2
docker build --quiet -f compose/postgres/Dockerfile -t "tunnelmesh/postgres:$TAG" "$ctx" >/dev/null
size=$(docker image inspect --format '{{.Size}}' "tunnelmesh/postgres:$TAG")
awk -v i="tunnelmesh/postgres:$TAG" -v s="$size" 'BEGIN { printf "%-28s %8.1f MB\n", i, s / 1e6 }'
