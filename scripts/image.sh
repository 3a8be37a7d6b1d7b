#!/usr/bin/env bash
# Builds the serving image (container/Containerfile) with podman: `scripts/image.sh [TAG]`.
#   FEEDRANK_BASE_IMAGE  a Debian bookworm image to build from; unset, a local base made once
#                        with debootstrap (for machines that reach no container registry)
#   FEEDRANK_EXTRAS      package extras to add, e.g. `ray` for a Ray cluster's image
# Podman's configuration and image store live in .cache/podman/ (see containers.conf there):
# runc, and ulimits within this machine's hard limits.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-localhost/feedrank:latest}
STATE=$PWD/.cache/podman
mkdir -p "$STATE"
cat > "$STATE/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=$(( $(ulimit -Hu) < 32768 ? $(ulimit -Hu) : 32768 )):$(( $(ulimit -Hu) < 32768 ? $(ulimit -Hu) : 32768 ))"]
[engine]
runtime = "runc"
CONF
cat > "$STATE/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$STATE/run"
CONF
export CONTAINERS_CONF=$STATE/containers.conf CONTAINERS_STORAGE_CONF=$STATE/storage.conf

BASE=${FEEDRANK_BASE_IMAGE:-localhost/feedrank-base:bookworm}
if [ -z "${FEEDRANK_BASE_IMAGE:-}" ] && ! podman image exists "$BASE"; then
  echo "making the base image $BASE with debootstrap (once)" >&2
  ROOTFS=$(mktemp -d)
  trap 'rm -rf "$ROOTFS"' EXIT
  debootstrap --variant=minbase bookworm "$ROOTFS" http://deb.debian.org/debian >/dev/null
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  tar -C "$ROOTFS" -c . | podman import - "$BASE" >/dev/null
fi
CA=/etc/ssl/certs/ca-certificates.crt
podman build --format docker --build-arg BASE="$BASE" --build-arg EXTRAS="${FEEDRANK_EXTRAS:-}" \
  --secret id=hostca,src="$CA" \
  -f container/Containerfile -t "$TAG" . >&2
echo "$TAG"
