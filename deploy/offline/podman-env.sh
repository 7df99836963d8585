# Sourced (`. deploy/offline/podman-env.sh`): podman with this project's settings and its own
# storage, so nothing global on the machine changes. The storage lives in a cache folder
# outside the clone (ADX_CONTAINER_CACHE, default ~/.cache/adx-containers): the base image and
# the build layers survive between runs.
ADX_CONTAINER_CACHE="${ADX_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/adx-containers}"
mkdir -p "$ADX_CONTAINER_CACHE/storage" "$ADX_CONTAINER_CACHE/run"
cat > "$ADX_CONTAINER_CACHE/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$ADX_CONTAINER_CACHE/storage"
runroot = "$ADX_CONTAINER_CACHE/run"
CONF
CONTAINERS_CONF="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)/containers.conf"
CONTAINERS_STORAGE_CONF="$ADX_CONTAINER_CACHE/storage.conf"
export ADX_CONTAINER_CACHE CONTAINERS_CONF CONTAINERS_STORAGE_CONF
