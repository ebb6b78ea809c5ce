#!/usr/bin/env bash
# Starts Debian's dockerd (apt starts no service on these machines) unless a Docker engine answers.
# Its state stays in the usual /var/lib/docker; its log goes to ${QW_CACHE}/dockerd.log.
set -euo pipefail
cache="${QW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/queueworker}"
mkdir -p "$cache"
if docker info >/dev/null 2>&1; then exit 0; fi
command -v dockerd >/dev/null || { echo "no dockerd: apt-get install -y docker.io (or install Docker)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "dockerd is started as root here; start your Docker engine yourself" >&2; exit 1; }
# MTU of the machine's uplink: the default 1500 stalls large transfers where eth0 has less.
mtu="$(cat /sys/class/net/"$(ip route show default | awk '{print $5; exit}')"/mtu 2>/dev/null || echo 1500)"
nohup dockerd --mtu "$mtu" >"$cache/dockerd.log" 2>&1 &
for _ in $(seq 100); do docker info >/dev/null 2>&1 && exit 0; sleep 0.3; done
echo "dockerd did not start; its log:" >&2; tail -20 "$cache/dockerd.log" >&2; exit 1
