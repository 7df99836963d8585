#!/usr/bin/env bash
# Builds ADX Core's images with podman or docker (ADX_CONTAINER_ENGINE to choose):
#   deploy/images/build.sh             localhost/adx-core:TAG and localhost/adx-core-router:TAG
#   deploy/images/build.sh --offline   also the third-party equivalents of
#                                      docker-compose.offline.yml, on a base from debootstrap
# TAG is ADX_IMAGE_TAG (default latest). A CA bundle at ADX_BUILD_CA_BUNDLE (default: the
# host's, /etc/ssl/certs/ca-certificates.crt) is handed to the build as the `host-ca` secret,
# for TLS-intercepting proxies; it is not part of any image.
set -euo pipefail
cd "$(dirname "$0")/../.."
offline=false
[ "${1:-}" = "--offline" ] && offline=true
engine="${ADX_CONTAINER_ENGINE:-$(command -v podman || command -v docker || true)}"
if [ -z "$engine" ]; then
  echo "build.sh: neither podman nor docker is installed" >&2
  exit 1
fi
if [ "$(basename "$engine")" = podman ]; then
  . deploy/offline/podman-env.sh
fi
tag="${ADX_IMAGE_TAG:-latest}"
ca="${ADX_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
flags=(--network=host)
[ -s "$ca" ] && flags+=(--secret "id=host-ca,src=$ca")
if $offline; then
  deploy/offline/debian-base.sh
  flags+=(--pull=never)
fi
build() { echo "build.sh: $*" >&2; "$engine" build "${flags[@]}" --quiet "$@" >/dev/null; }

build -f deploy/images/Dockerfile --target adx -t "localhost/adx-core:$tag" .
build -f deploy/images/Dockerfile --target router -t "localhost/adx-core-router:$tag" .
if $offline; then
  for part in postgres redis clamd; do
    build -f "deploy/offline/$part.Dockerfile" -t "localhost/adx-offline-$part:latest" deploy/offline
  done
  build -f deploy/offline/temporal.Dockerfile -t localhost/adx-offline-temporal:latest .
fi
