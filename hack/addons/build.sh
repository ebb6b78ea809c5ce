#!/usr/bin/env bash
# Builds the local cluster's add-ons and the helm CLI from the Go module proxy, at the releases pinned
# below, into ${QW_CACHE}/addons/bin. Go's caches are shared with hack/k8s/build.sh, so a second run takes
# seconds:
#   hack/addons/build.sh [BINARY ...]      (default: every binary; prints the bin directory last)
#   hack/addons/build.sh --source NAME     (prints the module directory of keda or prometheus-operator,
#                                           where the local cluster reads their CRDs and RBAC roles)
# Binaries:
#   helm                         the Helm CLI (helm.sh/helm/v4), for `make deploy` and the README's lines
#   keda-operator keda-adapter keda-webhooks
#                                KEDA: its operator, its External-metrics API server, its admission webhooks
#   prometheus-operator prometheus-config-reloader
#                                the Prometheus Operator (built from ./prometheus-operator, a module of ours:
#                                upstream's go.mod replaces its sub-modules with local paths)
#   prometheus                   Prometheus 3.x (no web UI assets: the API and the targets/rules endpoints)
#   prometheus-adapter           External metrics from that Prometheus, for `mode: hpa`
#   metrics-server               resource metrics, for `kubectl top` and CPU/memory HPAs
# A released module is built as released, with its own go.mod and go.sum (from the module cache, read-only).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${QW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/queueworker}"
bin="$cache/addons/bin"
export GOCACHE="${GOCACHE:-$cache/go-build}" GOMODCACHE="${GOMODCACHE:-$cache/go-mod}"
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
mkdir -p "$bin"

HELM=helm.sh/helm/v4@v4.3.2
KEDA=github.com/kedacore/keda/v2@v2.21.1
KEDA_GO=go1.27.4  # KEDA v2.21's go.mod asks for it; the Go module proxy serves the toolchain
# Prometheus v3.5.0 (module v0.305.0): the newest release the Prometheus Operator v0.85 lists as compatible
PROMETHEUS=github.com/prometheus/prometheus@v0.305.0
ADAPTER=sigs.k8s.io/prometheus-adapter@v0.12.0
METRICS_SERVER=sigs.k8s.io/metrics-server@v0.8.0

PROMETHEUS_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.85.0  # as ./prometheus-operator/go.mod

all=(helm prometheus-operator prometheus-config-reloader prometheus metrics-server prometheus-adapter
     keda-operator keda-adapter keda-webhooks)
wanted=("$@"); [ ${#wanted[@]} -gt 0 ] || wanted=("${all[@]}")

# module@version, the package in it, the Go toolchain, and the -X version flags each binary reports.
spec() {
  case "$1" in
    helm) echo "$HELM ./cmd/helm local" ;;
    prometheus) echo "$PROMETHEUS ./cmd/prometheus local" ;;
    prometheus-adapter) echo "$ADAPTER ./cmd/adapter local" ;;
    metrics-server) echo "$METRICS_SERVER ./cmd/metrics-server local" ;;
    keda-operator) echo "$KEDA ./cmd/operator $KEDA_GO" ;;
    keda-adapter) echo "$KEDA ./cmd/adapter $KEDA_GO" ;;
    keda-webhooks) echo "$KEDA ./cmd/webhooks $KEDA_GO" ;;
    prometheus-operator) echo "- github.com/prometheus-operator/prometheus-operator/cmd/operator local" ;;
    prometheus-config-reloader)
      echo "- github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader local" ;;
    *) echo "build.sh: unknown binary '$1' (one of: ${all[*]})" >&2; exit 2 ;;
  esac
}

# The module's directory in the cache, downloading it first (read-only: go build writes nothing there).
module_dir() {
  GOTOOLCHAIN="$2" go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

version_flags() {  # what `NAME --version` prints, where the project sets it through -X
  local name="$1" version="${2#*@}"
  case "$name" in
    helm) echo "-X helm.sh/helm/v4/internal/version.version=$version" ;;
    prometheus)
      local minor="${version#v0.3}"; minor="${minor%%.*}"  # module v0.3XX.Y is Prometheus 3.XX.Y
      echo "-X github.com/prometheus/common/version.Version=3.$((10#$minor)).${version##*.}" \
        "-X github.com/prometheus/common/version.Revision=released" ;;
    keda-*) echo "-X github.com/kedacore/keda/v2/version.Version=${version#v}" ;;
    prometheus-operator|prometheus-config-reloader)
      echo "-X github.com/prometheus/common/version.Version=0.85.0" ;;
    metrics-server|prometheus-adapter) echo "" ;;  # they print the Kubernetes library's version
  esac
}

if [ "${1:-}" = --source ]; then
  case "${2:-}" in
    keda) module_dir "$KEDA" "$KEDA_GO" ;;
    prometheus-operator) module_dir "$PROMETHEUS_OPERATOR" local ;;
    *) echo "build.sh: --source takes keda or prometheus-operator" >&2; exit 2 ;;
  esac
  exit 0
fi

for name in "${wanted[@]}"; do
  read -r module pkg toolchain <<<"$(spec "$name")"
  flags="$(version_flags "$name" "$module")"
  stamp="$( (echo "$module $pkg $toolchain $flags"; if [ "$module" = - ]; then cat "$here/prometheus-operator/go."*; fi) \
    | sha256sum | cut -c1-16)"
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then continue; fi
  start=$SECONDS
  echo "building $name ${module#*@} (cold: minutes; cached in $cache)" >&2
  if [ "$module" = - ]; then
    dir="$here/prometheus-operator"
  else
    dir="$(module_dir "$module" "$toolchain")"
    [ -n "$dir" ] || { echo "build.sh: could not download $module" >&2; exit 1; }
  fi
  (cd "$dir" && GOTOOLCHAIN="$toolchain" go build -trimpath -ldflags "-s -w $flags" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$stamp" >"$bin/.$name.stamp"
  echo "built $name in $((SECONDS - start)) s" >&2
done
echo "$bin"
