#!/usr/bin/env bash
# kube-score (github.com/zegl/kube-score), built once per version with `go install` into
#   $KIP_CACHE/bin/kube-score-<version>/kube-score
# then run on the manifests the role renders (tests/tools/render.yml).
#   kube-score.sh build   build or reuse the binary; print its path
#   kube-score.sh score   render the manifests with the role's defaults and score them
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KUBE_SCORE_VERSION=v1.20.0
KIP_CACHE=${KIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kip-image-puller}
bin_dir=$KIP_CACHE/bin/kube-score-$KUBE_SCORE_VERSION

build() {
  if [ ! -x "$bin_dir/kube-score" ]; then
    command -v go >/dev/null 2>&1 || { echo "error: 'go' is not on PATH; kube-score is built from its Go module" >&2; exit 2; }
    echo "[kube-score] building $KUBE_SCORE_VERSION into $bin_dir" >&2
    mkdir -p "$bin_dir"
    GOMODCACHE=$KIP_CACHE/go/mod GOCACHE=$KIP_CACHE/go/build CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
      GOBIN=$bin_dir go install "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
  fi
  echo "$bin_dir/kube-score"
}

out=
score() {
  local kube_score
  kube_score=$(build)
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  # Rendering needs no cluster: the platform is given, so nothing asks the API server.
  ANSIBLE_LOCALHOST_WARNING=false ansible-playbook "$here/render.yml" -e "render_dir=$out" >/dev/null
  echo "[kube-score] $(cd "$out" && printf '%s ' *.yaml)" >&2
  # Warnings fail too: every finding is either fixed or explained in the role's README.
  "$kube_score" score --output-format ci --exit-one-on-warning "$@" "$out"/*.yaml
}

case "${1:-}" in
  build) build ;;
  score) shift; score "$@" ;;
  *) echo "usage: $0 build|score" >&2; exit 2 ;;
esac
