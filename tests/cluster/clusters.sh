#!/usr/bin/env bash
# Several local clusters side by side (kwok nodes only), for the multi-cluster playbooks.
#
#   clusters.sh up           start (or reuse) each cluster; prints "NAME KUBECONFIG" per cluster
#   clusters.sh down         stop each cluster and remove its state
#   clusters.sh kubeconfigs  print the kubeconfig paths, one per line (running or not)
#
# Settings (environment):
#   CLUSTERS="kip-a:6450 kip-b:6451 kip-c:6452"  NAME:API_PORT of each cluster
#   CLUSTER_NODES=1                               plain nodes per cluster (each also has the gpu node)
#   CLUSTER_FLAVOUR, KIP_CACHE                    as for cluster.sh
# Each cluster lives in $KIP_CACHE/cluster-NAME. The main cluster (kip, port 6446, $KIP_CACHE/cluster)
# is never touched: its name is refused here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KIP_CACHE=${KIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kip-image-puller}
CLUSTERS=${CLUSTERS:-kip-a:6450 kip-b:6451 kip-c:6452}

die() { printf 'error: %s\n' "$*" >&2; exit 2; }

each() {
  local entry name port
  for entry in $CLUSTERS; do
    name=${entry%%:*}; port=${entry#*:}
    [[ $entry == *:* && -n $name && $port =~ ^[0-9]+$ ]] || die "CLUSTERS: expected NAME:PORT entries, got '$entry'"
    [ "$name" != kip ] || die "CLUSTERS: 'kip' is the main cluster's name; choose other names"
    "$@" "$name" "$port"
  done
}

run() {
  local cmd=$1 name=$2 port=$3
  CLUSTER_NAME=$name CLUSTER_API_PORT=$port KIP_CLUSTER_DIR=$KIP_CACHE/cluster-$name \
    CLUSTER_REAL_NODES=0 CLUSTER_NODES=${CLUSTER_NODES:-1} "$here/cluster.sh" "$cmd"
}

# One after another: kwokctl picks free ports for etcd and the controllers, and two clusters
# starting at once could pick the same one.
up() { local kubeconfig; kubeconfig=$(run up "$1" "$2"); printf '%s %s\n' "$1" "$kubeconfig"; }
down() { run down "$1" "$2"; }
kubeconfigs() { run kubeconfig "$1" "$2"; }

case ${1:-} in
  up) each up ;;
  down) each down ;;
  kubeconfigs) each kubeconfigs ;;
  *) echo "usage: $0 up|down|kubeconfigs" >&2; exit 2 ;;
esac
