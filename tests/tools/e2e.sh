#!/usr/bin/env bash
# `make e2e`: pytest against the local cluster. Run with the local cluster's environment (the Makefile's
# LOCAL_ENV); arguments are the test paths.
#
# When the whole suite runs, it runs in three pytest processes side by side: the tests that deploy to the real
# node (marker `real_node`: they wait on a kubelet pulling images), the kwok-only tests of SIDE_FILES (long
# rollouts of several DaemonSets, and the multi-cluster test's own clusters), and the other kwok-only tests. The
# image GC test waits for the kubelet's 5-minute GC rounds, so when the real node's kubelet has a maximum image
# age it runs in a fourth. Each test has namespaces of its own, so the groups do not see each other. The outage
# tests stop the API server for everyone, so they run last, alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
pytest=${PYTEST:-pytest}
SIDE_FILES=(tests/e2e/test_arch.py tests/e2e/test_adopt.py tests/e2e/test_seed_configs.py tests/e2e/test_multi_cluster.py)

# pytest exits 5 when it collects nothing: a failure here.
run() { local rc=0; "$pytest" "$@" || rc=$?; if [ $rc -eq 5 ]; then echo 'error: no tests collected' >&2; rc=1; fi; return $rc; }

gc_age=""
if [ "$*" = tests/e2e ]; then
  gc_age=$("$repo/tests/cluster/cluster.sh" real-node-env 2>/dev/null | sed -n 's/^IMAGE_MAX_AGE=//p' || true)
  [ "$gc_age" != 0s ] || gc_age=""
  [ -n "$gc_age" ] || echo "note: the image GC test is left out: the real node's kubelet has no maximum image age" \
    "(make test sets REAL_NODE_IMAGE_MAX_AGE=30s; or run make e2e-gc)"
fi

if [ "$*" != tests/e2e ]; then
  run -q -m 'cluster and not gc' "$@"
  exit
fi

logs=$(mktemp -d); trap 'rm -rf "$logs"' EXIT
gc=""
if [ -n "$gc_age" ]; then
  run -q -s -p no:cacheprovider -m gc tests/e2e/test_real_node.py >"$logs/gc" 2>&1 &
  gc=$!
fi
run -q --durations=10 -p no:cacheprovider -m 'cluster and real_node and not gc and not outage' tests/e2e >"$logs/real" 2>&1 &
real=$!
run -q --durations=10 -p no:cacheprovider -m 'cluster and not real_node and not gc and not outage' "${SIDE_FILES[@]}" >"$logs/side" 2>&1 &
side=$!
rc=0
deselect=(); for file in "${SIDE_FILES[@]}"; do deselect+=(--ignore "$file"); done
run -q --durations=15 -m 'cluster and not real_node and not gc and not outage' "${deselect[@]}" tests/e2e || rc=$?
side_rc=0; wait $side || side_rc=$?
echo "--- ${SIDE_FILES[*]} (ran beside the others):"; cat "$logs/side"
real_rc=0; wait $real || real_rc=$?
echo "--- the real-node tests (ran beside the others):"; cat "$logs/real"
gc_rc=0
if [ -n "$gc" ]; then
  wait $gc || gc_rc=$?
  echo "--- image GC test (ran beside the others):"; cat "$logs/gc"
fi
run -q -m 'cluster and outage' tests/e2e || rc=$?
[ $rc -eq 0 ] && [ $side_rc -eq 0 ] && [ $real_rc -eq 0 ] && [ $gc_rc -eq 0 ]
