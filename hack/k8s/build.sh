#!/usr/bin/env bash
# Builds the Kubernetes and etcd binaries the local clusters run, from the Go module proxy, at the release
# pinned in hack/k8s/go.mod. Output and Go's caches live outside the clone, so a second run takes seconds:
#   hack/k8s/build.sh [BINARY ...]      (default: every binary; prints the bin directory last)
# Binaries: etcd kube-apiserver kubectl yaml2json kube-controller-manager kube-scheduler kubelet kube-proxy
#           pause coredns kube-router (CoreDNS at $COREDNS_VERSION and kube-router at $KUBE_ROUTER_VERSION,
#           each built from its own module: the local cluster's DNS and NetworkPolicy firewall)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
release="$(awk '$1 == "k8s.io/kubernetes" || ($1 == "require" && $2 == "k8s.io/kubernetes") {print $NF}' "$here/go.mod")"
[ -n "$release" ] || { echo "build.sh: no k8s.io/kubernetes version in $here/go.mod" >&2; exit 1; }
cache="${QW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/queueworker}"
bin="$cache/k8s-$release/bin"
export GOCACHE="${GOCACHE:-$cache/go-build}" GOMODCACHE="${GOMODCACHE:-$cache/go-mod}"
export GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
mkdir -p "$bin"
minor="${release#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$release -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
all=(kube-apiserver etcd kubectl yaml2json kube-controller-manager kube-scheduler kubelet kube-proxy pause coredns
     kube-router)
COREDNS_VERSION=v1.14.7
KUBE_ROUTER_VERSION=v2.1.0
wanted=("$@"); [ ${#wanted[@]} -gt 0 ] || wanted=("${all[@]}")
# A binary is rebuilt when its inputs change: go.mod, go.sum, the version flags, its own main package here.
inputs="$(cat "$here/go.mod" "$here/go.sum"; echo "$ldflags")"
cd "$here"
for name in "${wanted[@]}"; do
  case "$name" in
    etcd) pkg=./etcd ;;
    yaml2json) pkg=./yaml2json ;;
    pause) pkg=./pause ;;
    coredns) pkg=github.com/coredns/coredns@$COREDNS_VERSION ;;
    kube-router) pkg=github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION ;;
    kube-apiserver|kubectl|kube-controller-manager|kube-scheduler|kubelet|kube-proxy) pkg="k8s.io/kubernetes/cmd/$name" ;;
    *) echo "build.sh: unknown binary '$name' (one of: ${all[*]})" >&2; exit 2 ;;
  esac
  stamp="$( (echo "$inputs $pkg"; if [ -d "$here/$pkg" ]; then cat "$here/$pkg"/*.go; fi) | sha256sum | cut -c1-16)"
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then continue; fi
  start=$SECONDS
  echo "building $name $release (cold: minutes; cached in $cache)" >&2
  if [[ "$pkg" == *@* ]]; then  # its own module and go.mod: `go install pkg@version` builds it as released
    GOBIN="$bin/.$name-build" GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w" "$pkg"
    mv "$bin/.$name-build/$name" "$bin/$name.tmp" && rmdir "$bin/.$name-build"
  else
    go build -trimpath -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg"
  fi
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$stamp" > "$bin/.$name.stamp"
  echo "built $name in $((SECONDS - start)) s" >&2
done
echo "$bin"
