#!/usr/bin/env bash
# The local test cluster: a real control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd) with nodes simulated by kwok, started by kwokctl in binary mode, and
# one real node (realnode.sh: kubelet + containerd + local registries) that kwok leaves alone.
#
#   cluster.sh up          build if needed, start (or reuse a healthy one), wait for every node
#   cluster.sh down        stop every process of the cluster and remove its state
#   cluster.sh status      what is running, and whether it is healthy
#   cluster.sh kubeconfig  print the kubeconfig path
#   cluster.sh apiserver-stop   kill the kube-apiserver (as a crash would); the rest keeps running
#   cluster.sh apiserver-start  start it again with the same command line; returns once it answers
#
# Settings (environment):
#   CLUSTER_NODES=3            plain nodes (the gpu pool adds 1 tainted node)
#   CLUSTER_ARCH_POOL=1        1: add the ppc64le pool (2 nodes, tainted kip.test/arch); 0: leave it out
#   CLUSTER_REAL_NODES=1       1: add real-node-0 (realnode.sh documents its own settings); 0: kwok only
#   CLUSTER_FLAVOUR=kubernetes kubernetes | openshift (adds the OpenShift quota and route APIs)
#   CLUSTER_API_PORT=6446      kube-apiserver port on 127.0.0.1
#   CLUSTER_NAME=kip           kwokctl cluster name
#   KIP_CLUSTER_DIR            where state lives (default: $KIP_CACHE/cluster for kip,
#                              $KIP_CACHE/cluster-<CLUSTER_NAME> for any other name)
#
# Several clusters run side by side when each has its own CLUSTER_NAME, CLUSTER_API_PORT and
# KIP_CLUSTER_DIR (one cluster per folder; only one of them may have the real node, whose ports
# are fixed). clusters.sh starts and stops such a set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

KIP_CACHE=${KIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kip-image-puller}
CLUSTER_NAME=${CLUSTER_NAME:-kip}
CLUSTER_NODES=${CLUSTER_NODES:-3}
CLUSTER_REAL_NODES=${CLUSTER_REAL_NODES:-1}
CLUSTER_ARCH_POOL=${CLUSTER_ARCH_POOL:-1}
ARCH_POOL_NODES=2
CLUSTER_FLAVOUR=${CLUSTER_FLAVOUR:-kubernetes}
CLUSTER_API_PORT=${CLUSTER_API_PORT:-6446}
if [ "$CLUSTER_NAME" = kip ]; then KIP_CLUSTER_DIR=${KIP_CLUSTER_DIR:-$KIP_CACHE/cluster}
else KIP_CLUSTER_DIR=${KIP_CLUSTER_DIR:-$KIP_CACHE/cluster-$CLUSTER_NAME}; fi
export KWOK_WORKDIR=$KIP_CLUSTER_DIR/kwok
cluster_dir=$KWOK_WORKDIR/clusters/$CLUSTER_NAME
kubeconfig=$cluster_dir/kubeconfig.yaml
state_file=$KIP_CLUSTER_DIR/state.env

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

paths() {
  eval "$("$here/build.sh" paths 2>/dev/null)"
  export PATH=$K8S_BIN:$KWOK_BIN:$ETCD_BIN:$PATH
}

kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }

validate_settings() {
  if ! [[ $CLUSTER_NODES =~ ^[0-9]+$ ]] || [ "$CLUSTER_NODES" -lt 1 ]; then
    die "CLUSTER_NODES must be a whole number >= 1, got '$CLUSTER_NODES'"
  fi
  case $CLUSTER_FLAVOUR in kubernetes|openshift) ;; *)
    die "CLUSTER_FLAVOUR must be 'kubernetes' or 'openshift', got '$CLUSTER_FLAVOUR'" ;;
  esac
  case $CLUSTER_ARCH_POOL in 0|1) ;; *) die "CLUSTER_ARCH_POOL must be 0 or 1, got '$CLUSTER_ARCH_POOL'" ;; esac
  [[ $CLUSTER_API_PORT =~ ^[0-9]+$ ]] || die "CLUSTER_API_PORT must be a port number, got '$CLUSTER_API_PORT'"
  case $CLUSTER_REAL_NODES in 0|1) ;; *) die "CLUSTER_REAL_NODES must be 0 or 1, got '$CLUSTER_REAL_NODES'" ;; esac
  # One cluster per folder: the state file, the process match and `down` cover the whole folder.
  local other
  for other in "$KWOK_WORKDIR"/clusters/*; do
    if ! [ -d "$other" ] || [ "$(basename "$other")" = "$CLUSTER_NAME" ]; then continue; fi
    die "KIP_CLUSTER_DIR=$KIP_CLUSTER_DIR already holds cluster '$(basename "$other")'; give cluster '$CLUSTER_NAME' a folder of its own (KIP_CLUSTER_DIR=...) or stop that one first"
  done
}

realnode() { KIP_CLUSTER_DIR=$KIP_CLUSTER_DIR CLUSTER_NAME=$CLUSTER_NAME "$here/realnode.sh" "$@"; }

# Every process of this cluster runs a binary linked from, or a flag naming, its directory.
# The processes whose command line names the cluster's folder, except this script and its
# ancestors: a caller's own command line may name the kubeconfig in it (env KUBECONFIG=... make).
cluster_pids() {
  local pid ancestors=" " up=$BASHPID
  while [ -n "$up" ] && [ "$up" != 0 ]; do
    ancestors+="$up "
    up=$(ps -o ppid= -p "$up" 2>/dev/null | tr -d " " || true)
  done
  for pid in $(pgrep -f -- "$KWOK_WORKDIR" 2>/dev/null || true); do
    case $ancestors in *" $pid "*) ;; *) echo "$pid" ;; esac
  done
}

state_value() { sed -n "s/^$1=//p" "$state_file"; }

healthy() {
  [ -f "$kubeconfig" ] && kc get --raw /readyz >/dev/null 2>&1 || return 1
  [ "$CLUSTER_REAL_NODES" = 0 ] || realnode healthy
}

port_owner() {
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1
}

# Waits (at most 10 s) while a process on its way out still listens on the port. An API server of 1,000 nodes
# killed by cmd_down drops its command line, so that pgrep no longer finds it, before the kernel has freed its
# memory and closed its sockets: the next `up` then found the port taken by a process that was already gone.
wait_port_released() {
  local pid tries=50
  while pid=$(port_owner "$1" | sed -n 's/.*(pid \([0-9]*\))$/\1/p'); [ -n "$pid" ] &&
        [ -z "$(tr -d '\0' < "/proc/$pid/cmdline" 2>/dev/null)" ] && [ $((tries -= 1)) -gt 0 ]; do
    sleep 0.2
  done
}

write_config() {
  local mod=$1 out=$KIP_CLUSTER_DIR/kwok.yaml
  mkdir -p "$KIP_CLUSTER_DIR"
  {
    cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  kubeVersion: $KUBE_VERSION
  bindAddress: 127.0.0.1
  kubeApiserverPort: $CLUSTER_API_PORT
  kubeApiserverBinary: $K8S_BIN/kube-apiserver
  kubeControllerManagerBinary: $K8S_BIN/kube-controller-manager
  kubeSchedulerBinary: $K8S_BIN/kube-scheduler
  kubectlBinary: $K8S_BIN/kubectl
  kwokControllerBinary: $KWOK_BIN/kwok
  etcdBinary: $ETCD_BIN/etcd
  kubeAuthorization: true
  kubeAdmission: true
componentsPatches:
  - name: etcd
    extraArgs:
      - key: unsafe-no-fsync
        value: "true"
  # The real node's kubelet is held to what a node may change, as on a real cluster.
  - name: kube-apiserver
    extraArgs:
      - key: enable-admission-plugins
        value: NodeRestriction
  # One instance of each, so no leader election: on a loaded machine a late lease renewal made the
  # scheduler exit ("Leaderelection lost") in the middle of a 1,001-node rollout, which then stalled.
  - name: kube-scheduler
    extraArgs:
      - key: leader-elect
        value: "false"
  - name: kube-controller-manager
    extraArgs:
      - key: leader-elect
        value: "false"
  # kwok manages only its own nodes (they carry this annotation), never the real node's pods.
  - name: kwok-controller
    extraArgs:
      - key: manage-all-nodes
        value: "false"
      - key: manage-nodes-with-annotation-selector
        value: kwok.x-k8s.io/node=fake
EOF
    # Custom stages replace kwok's defaults, so the defaults come along, from the pinned
    # module. pod-ready must leave alone the pods the pull-failure stage owns.
    local f
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      [ -f "$mod/kustomize/stage/$f" ] || die "kwok stage $f not found under $mod; run tests/cluster/build.sh kwok"
      echo "---"
      if [ "$f" = pod/fast/pod-ready.yaml ]; then
        awk '{print} /^    matchExpressions:$/ && !done {
          print "    - key: '\''[.spec.containers[]?, .spec.initContainers[]?] | any(.image | contains(\"pull-fails\"))'\''"
          print "      operator: '\''NotIn'\''"
          print "      values:"
          print "      - '\''true'\''"
          done=1 }' "$mod/kustomize/stage/$f"
      else
        cat "$mod/kustomize/stage/$f"
      fi
    done
    echo "---"
    cat "$here/manifests/pod-image-pull-backoff.yaml"
  } > "$out"
  echo "$out"
}

# The plain pool, kwok-node-0..N-1, created by parallel streams: the API server takes one
# stream's creates one after another, and kwokctl's own `scale node` is one such stream.
# Like every real kubelet they report ephemeral-storage; pods that request it could not be
# scheduled otherwise.
create_plain_nodes() {
  local n=$1 streams=8 s pids=()
  for ((s = 0; s < streams && s < n; s++)); do
    awk -v from="$s" -v to="$n" -v step="$streams" 'BEGIN {
      for (i = from; i < to; i += step) {
        name = "kwok-node-" i
        print "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: " name
        print "  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: \"0\"}"
        print "  labels: {kubernetes.io/arch: amd64, kubernetes.io/os: linux, kubernetes.io/hostname: " name ", type: kwok}"
        print "status:\n  allocatable: {cpu: \"32\", memory: 256Gi, ephemeral-storage: 100Gi, pods: \"110\"}"
        print "  capacity: {cpu: \"32\", memory: 256Gi, ephemeral-storage: 100Gi, pods: \"110\"}"
        print "  nodeInfo: {architecture: amd64, operatingSystem: linux}"
      } }' | kc create -f - >>"$KIP_CLUSTER_DIR/create.log" 2>&1 &
    pids+=($!)
  done
  for s in "${pids[@]}"; do wait "$s" || die "creating the plain nodes failed; see $KIP_CLUSTER_DIR/create.log"; done
}

# Schedulable means Ready and free of the taints the node lifecycle controller manages
# (node.kubernetes.io/not-ready, unreachable, ...): it removes not-ready a moment after
# the Ready condition turns True, and tests that start in between see a tainted node.
wait_nodes_ready() {
  local want=$1 deadline=$(( $(date +%s) + ${2:-600} )) ready=0
  local cols='NAME:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,TAINTS:.spec.taints[*].key'
  while :; do
    ready=$(kc get nodes --no-headers -o custom-columns="$cols" 2>/dev/null |
      awk '$2 == "True" && $3 !~ /node\.kubernetes\.io\//' | wc -l)
    [ "$ready" -ge "$want" ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      kc get nodes -o custom-columns="$cols" >&2 || true
      die "only $ready of $want nodes became Ready and schedulable; see $cluster_dir/logs"
    fi
    sleep 1
  done
}

cmd_up() {
  validate_settings
  "$here/build.sh" all >/dev/null
  paths
  local want=$((CLUSTER_NODES + 1 + CLUSTER_REAL_NODES + CLUSTER_ARCH_POOL * ARCH_POOL_NODES))
  [ "$CLUSTER_REAL_NODES" = 0 ] || "$here/deps.sh"
  if healthy && [ -f "$state_file" ]; then
    local have_nodes have_flavour have_real have_age have_arch
    have_nodes=$(state_value NODES); have_flavour=$(state_value FLAVOUR); have_real=$(state_value REAL_NODES)
    have_age=$(state_value IMAGE_MAX_AGE); have_arch=$(state_value ARCH_POOL)
    if [ "$have_nodes" = "$CLUSTER_NODES" ] && [ "$have_flavour" = "$CLUSTER_FLAVOUR" ] && [ "${have_arch:-0}" = "$CLUSTER_ARCH_POOL" ] &&
       [ "$have_real" = "$CLUSTER_REAL_NODES" ] && [ "$have_age" = "${REAL_NODE_IMAGE_MAX_AGE:-0s}" ]; then
      log "already running ($CLUSTER_NODES plain nodes + 1 gpu + $((CLUSTER_ARCH_POOL * ARCH_POOL_NODES)) ppc64le + $CLUSTER_REAL_NODES real, $CLUSTER_FLAVOUR); reusing it"
      wait_nodes_ready "$want" 120
      echo "$kubeconfig"; return 0
    fi
    log "running with $have_nodes nodes + ${have_real:-0} real ($have_flavour); replacing it with $CLUSTER_NODES + $CLUSTER_REAL_NODES real ($CLUSTER_FLAVOUR, image max age ${REAL_NODE_IMAGE_MAX_AGE:-0s})"
    cmd_down
  elif [ -d "$cluster_dir" ] || [ -n "$(cluster_pids)" ]; then
    log "found a stale or half-dead cluster from an earlier run; removing it"
    cmd_down
  fi
  local owner; owner=$(port_owner "$CLUSTER_API_PORT")
  [ -z "$owner" ] || die "port $CLUSTER_API_PORT on 127.0.0.1 is in use by $owner; stop it or choose another with CLUSTER_API_PORT=<port>"

  local t0; t0=$(date +%s%N)
  local conf; conf=$(write_config "$KWOK_MODDIR")
  log "starting $CLUSTER_NAME: Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION (state in $KIP_CLUSTER_DIR)"
  # Large clusters need kwokctl's QPS limits off (it also turns API priority and fairness off).
  local qps=(); [ "$CLUSTER_NODES" -lt 100 ] || qps=(--disable-qps-limits)
  # --kubeconfig "": kwokctl would otherwise add the cluster to $KUBECONFIG or ~/.kube/config (the
  # user's own, or another local cluster's) and make it the current context; delete takes it out again.
  # kwokctl picks free ports for etcd and the components; a cluster starting at the same moment
  # can take one first, and the component then runs without its server. Start afresh then.
  local attempt
  for attempt in 1 2 3; do
    if ! kwokctl --config "$conf" create cluster --name "$CLUSTER_NAME" --kubeconfig "" --wait 3m "${qps[@]}" \
        >"$KIP_CLUSTER_DIR/create.log" 2>&1; then
      sed 's/^/  /' "$KIP_CLUSTER_DIR/create.log" >&2
      die "kwokctl create cluster failed (log above; component logs in $cluster_dir/logs)"
    fi
    grep -ls 'address already in use' "$cluster_dir"/logs/*.log >/dev/null || break
    [ "$attempt" -lt 3 ] || die "a component of $CLUSTER_NAME could not bind its port three times; see $cluster_dir/logs"
    log "a port kwokctl chose was taken meanwhile ($(grep -ls 'address already in use' "$cluster_dir"/logs/*.log | xargs -n1 basename | tr '\n' ' ')); starting afresh"
    cmd_down >/dev/null
    mkdir -p "$KIP_CLUSTER_DIR"
    conf=$(write_config "$KWOK_MODDIR")
  done
  kc apply -f "$here/manifests/gpu-node.yaml" >/dev/null
  [ "$CLUSTER_ARCH_POOL" = 0 ] || kc apply -f "$here/manifests/ppc64le-pool/" >/dev/null
  create_plain_nodes "$CLUSTER_NODES"
  [ "$CLUSTER_REAL_NODES" = 0 ] || realnode up
  if [ "$CLUSTER_FLAVOUR" = openshift ]; then
    kc apply -f "$here/manifests/openshift/" >/dev/null
    kc wait --for=condition=Established --timeout=60s \
      crd/clusterresourcequotas.quota.openshift.io crd/routes.route.openshift.io >/dev/null
  fi
  wait_nodes_ready "$want" 600
  # Pods in a new namespace are refused until its default ServiceAccount exists.
  printf 'NODES=%s\nFLAVOUR=%s\nREAL_NODES=%s\nIMAGE_MAX_AGE=%s\nARCH_POOL=%s\nKUBECONFIG=%s\n' "$CLUSTER_NODES" "$CLUSTER_FLAVOUR" \
    "$CLUSTER_REAL_NODES" "${REAL_NODE_IMAGE_MAX_AGE:-0s}" "$CLUSTER_ARCH_POOL" "$kubeconfig" > "$state_file"
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  log "ready: $want nodes Ready in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"
  log "kubeconfig: $kubeconfig"
  echo "$kubeconfig"
}

cmd_down() {
  paths
  # The real node first: its kubelet and pods need the API server to stop cleanly.
  realnode down
  if [ -d "$cluster_dir" ]; then
    kwokctl delete cluster --name "$CLUSTER_NAME" --kubeconfig "" >/dev/null 2>&1 || true
  fi
  local pids; pids=$(cluster_pids)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    local tries=50
    while [ -n "$(cluster_pids)" ] && [ $((tries -= 1)) -gt 0 ]; do sleep 0.2; done
    pids=$(cluster_pids)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  fi
  rm -rf "$KWOK_WORKDIR" "$state_file" "$KIP_CLUSTER_DIR/kwok.yaml" "$KIP_CLUSTER_DIR/create.log"
  rmdir "$KIP_CLUSTER_DIR" 2>/dev/null || true
  [ -z "$(cluster_pids)" ] || die "processes of the cluster are still running: $(cluster_pids | tr '\n' ' ')"
  wait_port_released "$CLUSTER_API_PORT"
  log "stopped; no process of the cluster is left"
}

cmd_status() {
  paths
  if ! [ -d "$cluster_dir" ]; then echo "cluster $CLUSTER_NAME: not created"; return 3; fi
  if ! healthy; then echo "cluster $CLUSTER_NAME: unhealthy (state in $KIP_CLUSTER_DIR; run 'make cluster' to replace it)"; return 1; fi
  local flavour=kubernetes
  [ -f "$state_file" ] && flavour=$(state_value FLAVOUR)
  echo "cluster $CLUSTER_NAME: running ($flavour flavour)"
  echo "kubeconfig: $kubeconfig"
  kc version 2>/dev/null | sed 's/^/  /'
  echo "nodes: $(kc get nodes --no-headers | awk '$2 == "Ready"' | wc -l) Ready of $(kc get nodes --no-headers | wc -l)"
  kc get nodes -o custom-columns='NAME:.metadata.name,STATUS:.status.conditions[?(@.type=="Ready")].status,TAINTS:.spec.taints[*].key' | head -n 12
  if [ -d "$KIP_CLUSTER_DIR/real-node-0" ]; then echo "real node:"; realnode status; fi
}

# kwokctl's binary runtime runs each component as a plain process whose command line names the
# cluster's directory. An API server restart: kill kube-apiserver, later start the same command line.
# The controller-manager and the scheduler are started afresh with it. Without leader election they
# would live on, but their watches come back only after client-go's back-off (up to 30 s): a
# namespace created just after the restart waited that long for its default ServiceAccount.
# kwok-controller is started again only if it died (a restarted one left the pods unavailable).
COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kwok-controller"

component_pid() {
  local pid
  for pid in $(pgrep -f -- "$1.*$KWOK_WORKDIR" 2>/dev/null || true); do
    # argv[0], not /proc/<pid>/exe: kwok-controller is a link to the kwok binary
    if [ "$(basename "$(tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | head -1)")" = "$1" ]; then echo "$pid"; fi
  done
}

start_component() {
  local name=$1 saved=$cluster_dir/saved/$1 cwd
  local -a argv; mapfile -d '' -t argv < "$saved.cmdline"
  # read here, not in the background: the caller removes the saved files next
  cwd=$(cat "$saved.cwd")
  (cd "$cwd" && exec setsid "${argv[@]}" >>"$cluster_dir/logs/$name.log" 2>&1 </dev/null) &
}

cmd_apiserver_stop() {
  local pid name
  pid=$(component_pid kube-apiserver)
  [ -n "$pid" ] || die "no kube-apiserver of cluster $CLUSTER_NAME is running"
  mkdir -p "$cluster_dir/saved"
  # the command lines (NUL-separated) and working directories, to start the same processes again
  for name in $COMPONENTS; do
    local p; p=$(component_pid "$name")
    [ -n "$p" ] || continue
    cp "/proc/$p/cmdline" "$cluster_dir/saved/$name.cmdline"
    readlink "/proc/$p/cwd" > "$cluster_dir/saved/$name.cwd"
  done
  kill -9 "$pid"
  local tries=50
  while [ -d "/proc/$pid" ] && [ $((tries -= 1)) -gt 0 ]; do sleep 0.1; done
  log "kube-apiserver (pid $pid) stopped"
}

cmd_apiserver_start() {
  [ -f "$cluster_dir/saved/kube-apiserver.cmdline" ] || die "no stopped kube-apiserver to start (run apiserver-stop first)"
  [ -z "$(component_pid kube-apiserver)" ] || die "kube-apiserver of cluster $CLUSTER_NAME is already running"
  start_component kube-apiserver
  local tries=300
  until kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; do
    [ $((tries -= 1)) -gt 0 ] || die "kube-apiserver did not answer within 60 s; see $cluster_dir/logs/kube-apiserver.log"
    sleep 0.2
  done
  local name pid restarted=""
  for name in $COMPONENTS; do
    if [ "$name" != kube-apiserver ] && [ -f "$cluster_dir/saved/$name.cmdline" ]; then
      pid=$(component_pid "$name")
      # kwok keeps its own state of the fake nodes and pods: started again only if it died
      if [ -n "$pid" ] && [ "$name" = kwok-controller ]; then continue; fi
      if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        tries=50
        while [ -d "/proc/$pid" ] && [ $((tries -= 1)) -gt 0 ]; do sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
      fi
      start_component "$name"
      restarted="$restarted $name"
    fi
  done
  rm -rf "$cluster_dir/saved"
  log "kube-apiserver started again (pid $(component_pid kube-apiserver))${restarted:+; restarted:$restarted}"
}

case ${1:-} in
  up) cmd_up ;;
  apiserver-stop) cmd_apiserver_stop ;;
  apiserver-start) paths; cmd_apiserver_start ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kubeconfig) echo "$kubeconfig" ;;
  real-node-env) realnode env ;;
  real-node-images) realnode images ;;
  *) echo "usage: $0 up|down|status|kubeconfig|apiserver-stop|apiserver-start|real-node-env|real-node-images" >&2; exit 2 ;;
esac
