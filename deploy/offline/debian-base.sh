#!/usr/bin/env bash
# The Debian base image the Dockerfiles name (docker.io/library/debian:12.11-slim), made where
# no registry can be reached: debootstrap from the Debian mirror this machine's apt already
# uses, then imported into podman under that name. Elsewhere `docker pull` gives the real one;
# only the provenance differs (Debian's archive instead of a registry). Skipped when present.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/podman-env.sh"
name="${1:-docker.io/library/debian:12.11-slim}"
if podman image exists "$name"; then
  exit 0
fi
mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
mirror="${mirror:-http://deb.debian.org/debian}"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "debian-base: debootstrap bookworm from $mirror (about 1.5 minutes, once)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# The official image's package sources: the release, its updates and its security fixes.
rm -f "$root/etc/apt/sources.list"
cat > "$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# What slim images also leave out.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" -c . | podman import --change 'CMD ["bash"]' - "$name" >/dev/null
echo "debian-base: imported as $name"
