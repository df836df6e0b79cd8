#!/usr/bin/env bash
# Build the local cluster's binaries from Go modules, once per pinned version.
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  <- k8s.io/kubernetes
#   etcd                                                              <- go.etcd.io/etcd/server/v3
#   kwok, kwokctl                                                     <- sigs.k8s.io/kwok
# Output: $KIP_CACHE/bin/<component>-<version>/ ; prints the bin directory of each.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
KIP_CACHE=${KIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kip-image-puller}

export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$KIP_CACHE/go/mod}
export GOCACHE=${GOCACHE_OVERRIDE:-$KIP_CACHE/go/build}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

k8s_bin=$KIP_CACHE/bin/kubernetes-$KUBE_VERSION
etcd_bin=$KIP_CACHE/bin/etcd-$ETCD_VERSION
kwok_bin=$KIP_CACHE/bin/kwok-$KWOK_VERSION

# Go is needed only when something is missing from the cache.
need_go() {
  command -v go >/dev/null 2>&1 || {
    echo "error: 'go' is not on PATH. The local cluster is built from Go modules;" >&2
    echo "       install Go >= 1.26 (https://go.dev/doc/install) and run again." >&2
    exit 2
  }
  local go_minor
  go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  if [ "${go_minor:-0}" -lt 26 ]; then
    echo "error: Go $(go env GOVERSION) is too old; kwok ${KWOK_VERSION} and Kubernetes ${KUBE_VERSION} need Go >= 1.26." >&2
    exit 2
  fi
  mkdir -p "$GOMODCACHE" "$GOCACHE"
}

log() { printf '[build] %s\n' "$*" >&2; }

have_all() { local d=$1; shift; for b in "$@"; do [ -x "$d/$b" ] || return 1; done; }

build_kubernetes() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  if have_all "$k8s_bin" "${bins[@]}"; then log "kubernetes $KUBE_VERSION: cached"; return; fi
  need_go
  log "kubernetes $KUBE_VERSION: building ${bins[*]} (cold: tens of minutes on 2 cores)"
  local w; w=$(mktemp -d); trap 'rm -rf "$w"' RETURN
  local staging_ver="v0.${KUBE_VERSION#v1.}"
  (
    cd "$w"
    go mod init kip.local/k8sbins >/dev/null 2>&1
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [ -f "$gomod" ] || { echo "error: could not download the go.mod of k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
    # Every staging module the tag replaces with ./staging/src/... maps to its published v0.x.y.
    local mods
    mods=$(sed -n -E 's#^[[:space:]]*(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/src/.*#\1#p' "$gomod")
    [ -n "$mods" ] || { echo "error: no staging replaces found in $gomod" >&2; exit 1; }
    local args=()
    for m in $mods; do args+=("-replace=$m=$m@$staging_ver"); done
    go mod edit "${args[@]}" -require="k8s.io/kubernetes@$KUBE_VERSION"
    go mod edit -go="$(sed -n -E 's/^go ([0-9.]+)$/\1/p' "$gomod")"
    # Keep upstream's GODEBUG defaults.
    grep -E '^godebug ' "$gomod" >> go.mod || true
    cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    go mod tidy >/dev/null
    local v=${KUBE_VERSION#v} major minor
    major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
    local ldf="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldf+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
      ldf+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    mkdir -p "$w/out"
    go build -trimpath -ldflags "$ldf" -o "$w/out/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  )
  mkdir -p "$(dirname "$k8s_bin")"; rm -rf "$k8s_bin.tmp"; mv "$w/out" "$k8s_bin.tmp"
  rm -rf "$k8s_bin"; mv "$k8s_bin.tmp" "$k8s_bin"
}

build_etcd() {
  if have_all "$etcd_bin" etcd; then log "etcd $ETCD_VERSION: cached"; return; fi
  need_go
  log "etcd $ETCD_VERSION: building"
  local w; w=$(mktemp -d); trap 'rm -rf "$w"' RETURN
  (
    cd "$w"
    go mod init kip.local/etcdbin >/dev/null 2>&1
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
    go mod tidy >/dev/null
    mkdir -p out
    go build -trimpath -ldflags "-s -w" -o out/etcd go.etcd.io/etcd/server/v3
  )
  mkdir -p "$(dirname "$etcd_bin")"; rm -rf "$etcd_bin"; mv "$w/out" "$etcd_bin"
}

build_kwok() {
  if have_all "$kwok_bin" kwok kwokctl; then log "kwok $KWOK_VERSION: cached"; return; fi
  need_go
  log "kwok $KWOK_VERSION: building"
  mkdir -p "$kwok_bin.tmp"
  GOBIN="$kwok_bin.tmp" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  rm -rf "$kwok_bin"; mv "$kwok_bin.tmp" "$kwok_bin"
}

what=${1:-all}
case $what in
  all) build_kwok; build_etcd; build_kubernetes ;;
  kubernetes) build_kubernetes ;;
  etcd) build_etcd ;;
  kwok) build_kwok ;;
  paths) ;;
  *) echo "usage: $0 [all|kubernetes|etcd|kwok|paths]" >&2; exit 2 ;;
esac
printf 'K8S_BIN=%s\nETCD_BIN=%s\nKWOK_BIN=%s\nKWOK_MODDIR=%s\n' "$k8s_bin" "$etcd_bin" "$kwok_bin" \
  "$GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION"
