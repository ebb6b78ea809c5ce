#!/usr/bin/env bash
# Builds one image per add-on binary (hack/addons/build.sh), each FROM scratch with the binary alone, run
# as a non-root user: the local cluster's KEDA, Prometheus Operator, Prometheus, prometheus-adapter and
# metrics-server. Docker's layer cache makes a second run take seconds.
#   hack/addons/images.sh          (prints the image references it built, one per line, last)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"; root="$(cd "$here/../.." && pwd)"
"$root/hack/images/docker.sh"
names=(keda-operator keda-adapter keda-webhooks prometheus-operator prometheus-config-reloader prometheus
       prometheus-adapter metrics-server)
bin="$("$here/build.sh" "${names[@]}" | tail -n 1)"
for name in "${names[@]}"; do
  ctx="$(mktemp -d)"; cp "$bin/$name" "$ctx/$name"
  # Prometheus keeps its working files (the query log's lock) under its data directory, mounted by the
  # Prometheus Operator; nothing else writes outside the volumes its Deployment mounts.
  printf 'FROM scratch\nCOPY %s /bin/%s\nUSER 65532:65532\nENTRYPOINT ["/bin/%s"]\n' "$name" "$name" "$name" \
    >"$ctx/Dockerfile"
  docker build -q -t "queueworker.local/$name:local" "$ctx" >/dev/null
  rm -rf "$ctx"
done
printf 'queueworker.local/%s:local\n' "${names[@]}"
