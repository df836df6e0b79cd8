#!/usr/bin/env bash
# `make e2e`: pytest against the local cluster. Run with the local cluster's environment (the Makefile's
# LOCAL_ENV); arguments are the test paths.
#
# The image GC test waits for the kubelet's 5-minute GC rounds, so when the whole suite runs and the
# real node's kubelet has a maximum image age, it runs in a second pytest beside the others. The
# outage tests stop the API server for everyone, so they wait until it has finished.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
pytest=${PYTEST:-pytest}

# pytest exits 5 when it collects nothing: a failure here.
run() { local rc=0; "$pytest" "$@" || rc=$?; if [ $rc -eq 5 ]; then echo 'error: no tests collected' >&2; rc=1; fi; return $rc; }

gc_age=""
if [ "$*" = tests/e2e ]; then
  gc_age=$("$repo/tests/cluster/cluster.sh" real-node-env 2>/dev/null | sed -n 's/^IMAGE_MAX_AGE=//p' || true)
  [ "$gc_age" != 0s ] || gc_age=""
  [ -n "$gc_age" ] || echo "note: the image GC test is left out: the real node's kubelet has no maximum image age" \
    "(make test sets REAL_NODE_IMAGE_MAX_AGE=30s; or run make e2e-gc)"
fi

if [ -z "$gc_age" ]; then
  run -q -m 'cluster and not gc' "$@"
  exit
fi

gc_log=$(mktemp); trap 'rm -f "$gc_log"' EXIT
run -q -s -p no:cacheprovider -m gc tests/e2e/test_real_node.py >"$gc_log" 2>&1 &
gc=$!
rc=0
run -q -m 'cluster and not gc and not outage' "$@" || rc=$?
gc_rc=0; wait $gc || gc_rc=$?
echo "--- image GC test (ran beside the others):"; cat "$gc_log"
run -q -m 'cluster and outage' "$@" || rc=$?
[ $rc -eq 0 ] && [ $gc_rc -eq 0 ]
