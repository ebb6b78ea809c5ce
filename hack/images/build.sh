#!/usr/bin/env bash
# Builds every image the local cluster runs, with no registry: a Debian base made with debootstrap, a
# Python base on it, the project's operator and worker images (images/Dockerfile's targets, unchanged,
# with the local base as PYTHON_IMAGE), Redis from Debian's redis-server, and the pause and CoreDNS images
# from binaries built by hack/k8s/build.sh. Bases are cached (docker images + a rootfs tarball in
# ${QW_CACHE}); the project's images are rebuilt each run, from Docker's layer cache when nothing changed.
#   hack/images/build.sh TAG          (prints the image references it built, one per line, last)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"; root="$(cd "$here/../.." && pwd)"
tag="${1:-dev}"
cache="${QW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/queueworker}"
mkdir -p "$cache/images"
"$here/docker.sh"
has() { docker image inspect "$1" >/dev/null 2>&1; }
log() { echo "images: $*" >&2; }

if ! has local/debian:bookworm; then
  tarball="$cache/images/debian-bookworm-minbase.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { echo "no debootstrap: apt-get install -y debootstrap" >&2; exit 1; }
    rootfs="$(mktemp -d)"; start=$SECONDS
    mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    log "debootstrap bookworm minbase from $mirror (a few minutes, once)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/images/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/images/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . >"$tarball.tmp" && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"; log "debootstrap took $((SECONDS - start)) s"
  fi
  docker import "$tarball" local/debian:bookworm >/dev/null
fi

if ! has local/python:3.11-bookworm; then
  ctx="$(mktemp -d)"; mkdir "$ctx/ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
  cp "$here/python-base.Dockerfile" "$ctx/Dockerfile"
  docker build -q -t local/python:3.11-bookworm "$ctx" >/dev/null
  rm -rf "$ctx"
fi

bin="$("$root/hack/k8s/build.sh" pause coredns)"
for name in pause coredns; do
  ref="queueworker.local/$name:local"
  ctx="$(mktemp -d)"; cp "$bin/$name" "$ctx/$name"
  printf 'FROM scratch\nCOPY %s /%s\nUSER 65532:65532\nENTRYPOINT ["/%s"]\n' "$name" "$name" "$name" >"$ctx/Dockerfile"
  docker build -q -t "$ref" "$ctx" >/dev/null; rm -rf "$ctx"
done
docker build -q -t "queueworker.local/redis:local" -f "$here/redis.Dockerfile" "$here" >/dev/null

start=$SECONDS
for image in operator worker; do
  docker build -q --build-arg PYTHON_IMAGE=local/python:3.11-bookworm -f "$root/images/Dockerfile" --target "$image" \
    -t "queueworker/$image:$tag" "$root" >/dev/null
done
log "operator and worker images built in $((SECONDS - start)) s"
printf '%s\n' "queueworker/operator:$tag" "queueworker/worker:$tag" queueworker.local/redis:local \
  queueworker.local/pause:local queueworker.local/coredns:local
