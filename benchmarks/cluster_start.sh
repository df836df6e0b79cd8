#!/usr/bin/env bash
# Benchmark: warm start of the local cluster to every node Ready (binaries already built).
# Prints one line per size, without and with the real node (kubelet + containerd + registries),
# side by side; asserts nothing. Targets: 4 nodes < 30 s, 1,000 nodes < 120 s; the real node
# adds at most 30 s. It replaces any running local cluster (`cluster.sh down` between runs).
#   benchmarks/cluster_start.sh [PLAIN_NODES ...]    default: 3 1000 (plain nodes; +1 gpu node)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(3 1000)
"$here/tests/cluster/build.sh" all >/dev/null
printf '%-12s %-10s %-10s %s\n' "kwok nodes" "real node" "seconds" "peak RSS of the control plane and kwok (MiB)"
for n in "${sizes[@]}"; do
 for real in 0 1; do
  "$here/tests/cluster/cluster.sh" down >/dev/null 2>&1
  t0=$(date +%s%N)
  CLUSTER_NODES=$n CLUSTER_REAL_NODES=$real "$here/tests/cluster/cluster.sh" up >/dev/null 2>&1
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  dir=${KIP_CLUSTER_DIR:-${KIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kip-image-puller}/cluster}
  rss=0
  for pid in $(pgrep -f -- "$dir/kwok" || true); do
    r=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0); rss=$((rss + ${r:-0}))
  done
  printf '%-12s %-10s %-10s %s\n' "$((n + 1))" "$real" "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))" "$((rss / 1024))"
 done
done
