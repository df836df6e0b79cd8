#!/usr/bin/env bash
# Build the local cluster's binaries from Go modules, once per pinned version.
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  <- k8s.io/kubernetes
#   etcd                                                              <- go.etcd.io/etcd/server/v3
#   kwok, kwokctl                                                     <- sigs.k8s.io/kwok
#   kubelet, and pause (gcc -static, build/pause/linux/pause.c)       <- k8s.io/kubernetes  (the real node)
#   crictl                                                            <- sigs.k8s.io/cri-tools
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
node_bin=$KIP_CACHE/bin/node-$KUBE_VERSION-crictl-$CRICTL_VERSION
# The test images' static sleep, keyed by its source.
sleep_bin=$KIP_CACHE/bin/kip-sleep-$(cat "$here/images/sleep/main.go" "$here/images/sleep/go.mod" | sha256sum | cut -c1-12)

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

# Builds commands of k8s.io/kubernetes at $KUBE_VERSION into $1 from a throw-away wrapper module.
build_k8s_cmds() {
  local out_dir=$1; shift
  local cmds=("$@")
  local w; w=$(mktemp -d); trap 'rm -rf "$w"; trap - RETURN' RETURN
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
    local c pkgs=()
    { printf '//go:build tools\n\npackage tools\n\nimport (\n'
      for c in "${cmds[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
      printf ')\n'; } > tools.go
    for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    go mod tidy >/dev/null
    local v=${KUBE_VERSION#v} major minor
    major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
    local ldf="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldf+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
      ldf+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    mkdir -p "$w/out"
    go build -trimpath -ldflags "$ldf" -o "$w/out/" "${pkgs[@]}"
  )
  mkdir -p "$(dirname "$out_dir")"; rm -rf "$out_dir.tmp"; mv "$w/out" "$out_dir.tmp"
  rm -rf "$out_dir"; mv "$out_dir.tmp" "$out_dir"
}

build_kubernetes() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  if have_all "$k8s_bin" "${bins[@]}"; then log "kubernetes $KUBE_VERSION: cached"; return; fi
  need_go
  log "kubernetes $KUBE_VERSION: building ${bins[*]} (cold: tens of minutes on 2 cores)"
  build_k8s_cmds "$k8s_bin" "${bins[@]}"
}

# The real node: kubelet (same module and version as the control plane), the sandbox's static
# pause from the same tag's source, and crictl to read the node's image store.
build_node() {
  if have_all "$node_bin" kubelet pause crictl; then log "node $KUBE_VERSION (crictl $CRICTL_VERSION): cached"; return; fi
  need_go
  command -v gcc >/dev/null || { echo "error: gcc is needed to build the static pause binary" >&2; exit 2; }
  log "node: building kubelet $KUBE_VERSION, pause, crictl $CRICTL_VERSION"
  build_k8s_cmds "$node_bin.k" kubelet
  local src
  src=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/build/pause/linux/pause.c
  [ -f "$src" ] || { echo "error: $src not found in the k8s.io/kubernetes module" >&2; exit 1; }
  gcc -Os -Wall -static -DVERSION="$KUBE_VERSION" -o "$node_bin.k/pause" "$src"
  GOBIN="$node_bin.k" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  rm -rf "$node_bin"; mv "$node_bin.k" "$node_bin"
}

build_etcd() {
  if have_all "$etcd_bin" etcd; then log "etcd $ETCD_VERSION: cached"; return; fi
  need_go
  log "etcd $ETCD_VERSION: building"
  local w; w=$(mktemp -d); trap 'rm -rf "$w"; trap - RETURN' RETURN
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

build_sleep() {
  if have_all "$sleep_bin" sleep; then log "test-image sleep: cached"; return; fi
  need_go
  log "test-image sleep: building"
  (cd "$here/images/sleep" && go build -trimpath -ldflags "-s -w" -o "$sleep_bin.tmp/sleep" .)
  rm -rf "$sleep_bin"; mv "$sleep_bin.tmp" "$sleep_bin"
}

what=${1:-all}
case $what in
  all) build_kwok; build_etcd; build_kubernetes; build_node; build_sleep ;;
  kubernetes) build_kubernetes ;;
  node) build_node; build_sleep ;;
  etcd) build_etcd ;;
  kwok) build_kwok ;;
  paths) ;;
  *) echo "usage: $0 [all|kubernetes|etcd|kwok|node|paths]" >&2; exit 2 ;;
esac
printf 'K8S_BIN=%s\nETCD_BIN=%s\nKWOK_BIN=%s\nNODE_BIN=%s\nSLEEP_BIN=%s\nKWOK_MODDIR=%s\n' "$k8s_bin" "$etcd_bin" "$kwok_bin" "$node_bin" "$sleep_bin" \
  "$GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION"
