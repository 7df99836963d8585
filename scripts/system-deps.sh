#!/usr/bin/env bash
# Installs the Debian packages the test suite runs for real (Redis, PostgreSQL, clamd, podman)
# when they are missing.
# The tests start their own instances on free ports; the machine's default ones are never touched.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
id postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
# The file service's virus scanner; its tests start clamd with their own tiny signature
# database (freshclam is never run: no signature download is possible or wanted).
[ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)
# The deploy tests: compose validated by Docker's compose, then run with real containers
# (podman + runc, netavark and aardvark-dns for service names; debootstrap makes the base
# image where no registry is reachable). deploy/offline/containers.conf says why runc.
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /usr/lib/podman/netavark ] || missing+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || missing+=(aardvark-dns)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "system-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
