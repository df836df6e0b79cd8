#!/usr/bin/env bash
# The real node of the local cluster: real-node-0, a kubelet built from the pinned Kubernetes
# module with Debian's containerd and runc, pulling real images from registries on 127.0.0.1.
# cluster.sh calls it after the control plane is up, and before removing the cluster.
#
#   realnode.sh up       registries + test images, containerd, kubelet (joined as system:node:real-node-0)
#   realnode.sh down     stop the kubelet, every pod and shim, containerd and the registries;
#                        unmount what they mounted, remove their network namespaces and bridge
#   realnode.sh status   which of its processes run
#   realnode.sh env      the facts tests need (registries, sockets, credentials file), as NAME=value
#   realnode.sh images   the node's image store, read through its CRI socket (crictl images)
#
# The node carries the taint kip.test/real-node=true:NoSchedule: only pods that tolerate it
# run there (every image they name must be in the local registries; nothing public is reachable).
#
# Settings (environment; cluster.sh passes its own):
#   KIP_CLUSTER_DIR                state folder of the cluster (this node lives in real-node-0/)
#   CLUSTER_NAME=kip               the kwokctl cluster it joins
#   CLUSTER_REGISTRY_PORT=5000     public registry; the private one (basic auth) listens on +1
#   CLUSTER_KUBELET_PORT=10250     kubelet API; its healthz listens on +1
#   REAL_NODE_IMAGE_MAX_AGE=0s     the kubelet's imageMaximumGCAge (0s: no age-based GC)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

KIP_CACHE=${KIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kip-image-puller}
CLUSTER_NAME=${CLUSTER_NAME:-kip}
KIP_CLUSTER_DIR=${KIP_CLUSTER_DIR:-$KIP_CACHE/cluster}
CLUSTER_REGISTRY_PORT=${CLUSTER_REGISTRY_PORT:-5000}
CLUSTER_KUBELET_PORT=${CLUSTER_KUBELET_PORT:-10250}
REAL_NODE_IMAGE_MAX_AGE=${REAL_NODE_IMAGE_MAX_AGE:-0s}
NODE_NAME=real-node-0
cluster_dir=$KIP_CLUSTER_DIR/kwok/clusters/$CLUSTER_NAME
dir=$KIP_CLUSTER_DIR/$NODE_NAME
sock=$dir/containerd/containerd.sock
registry=127.0.0.1:$CLUSTER_REGISTRY_PORT
private_registry=127.0.0.1:$((CLUSTER_REGISTRY_PORT + 1))
bridge=kipcni$((CLUSTER_REGISTRY_PORT % 100))
pod_subnet=10.244.$((CLUSTER_REGISTRY_PORT % 200)).0/24
# The kubelet's cgroup root: its own per cluster, because a kubelet removes every pod cgroup it
# does not know, so two real nodes under one /kubepods would kill each other's pods.
cgroup_root=kip-$CLUSTER_NAME

log() { printf '[real-node] %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

paths() {
  eval "$("$here/build.sh" paths 2>/dev/null)"
  export PATH=$K8S_BIN:$NODE_BIN:$PATH SLEEP_BIN
}
kc() { kubectl --kubeconfig "$cluster_dir/kubeconfig.yaml" "$@"; }
cri() {
  [ -f "$dir/crictl.yaml" ] || printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 30\n' "$sock" "$sock" > "$dir/crictl.yaml"
  crictl --config "$dir/crictl.yaml" "$@"
}

port_owner() {
  ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1
}
pid_of() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null && cat "$dir/$1.pid"; }

# Everything the node needs from the machine, checked before anything starts.
preflight() {
  [ "$(id -u)" = 0 ] || die "the real node needs root (kubelet, containerd and runc mount and create cgroups); run as root or set CLUSTER_REAL_NODES=0"
  local missing=() c
  for c in containerd containerd-shim-runc-v2 runc ctr docker-registry htpasswd openssl ip; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=(/usr/lib/cni/bridge)
  [ ${#missing[@]} -eq 0 ] || die "missing for the real node: ${missing[*]}; run tests/cluster/deps.sh (Debian packages) or set CLUSTER_REAL_NODES=0"
  local probe=/sys/fs/cgroup/memory/kip-probe-$$
  if [ -d /sys/fs/cgroup/memory ]; then
    if ! mkdir "$probe" 2>/dev/null; then
      die "cannot create cgroups under /sys/fs/cgroup/memory (no cgroup write access); the kubelet needs it; set CLUSTER_REAL_NODES=0"
    fi
    rmdir "$probe"
  elif ! [ -w /sys/fs/cgroup ]; then
    die "cannot write to /sys/fs/cgroup; the kubelet needs cgroup write access; set CLUSTER_REAL_NODES=0"
  fi
  local port owner
  for port in "$CLUSTER_REGISTRY_PORT" "$((CLUSTER_REGISTRY_PORT + 1))" "$CLUSTER_KUBELET_PORT" "$((CLUSTER_KUBELET_PORT + 1))"; do
    owner=$(port_owner "$port")
    [ -z "$owner" ] || die "port $port on 127.0.0.1 is in use by $owner; stop it, or choose CLUSTER_REGISTRY_PORT / CLUSTER_KUBELET_PORT"
  done
  if ! [ -f "$cluster_dir/pki/ca.crt" ] || ! [ -f "$cluster_dir/pki/ca.key" ]; then
    die "the cluster's CA ($cluster_dir/pki) is missing; start the control plane first (cluster.sh up)"
  fi
}

start_bg() {  # name, command...: runs detached, its log and pid under $dir
  local name=$1; shift
  setsid "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/$name.pid"
}

wait_for() {  # what, seconds, command...
  local what=$1 secs=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$what did not come up within ${secs} s; see $dir/logs"
    sleep 0.2
  done
}

start_registries() {
  mkdir -p "$dir/registry/public" "$dir/registry/private"
  local pw_file=$dir/registry/password
  [ -s "$pw_file" ] || (umask 077; openssl rand -hex 16 > "$pw_file")
  htpasswd -B -i -c "$dir/registry/htpasswd" kip-test < "$pw_file" 2>/dev/null
  local which port auth
  for which in public private; do
    port=$CLUSTER_REGISTRY_PORT; auth=""
    if [ "$which" = private ]; then
      port=$((CLUSTER_REGISTRY_PORT + 1))
      auth="auth: {htpasswd: {realm: kip-test, path: $dir/registry/htpasswd}}"
    fi
    cat > "$dir/registry/$which.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $dir/registry/$which}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port, secret: kip-local-$which}
$auth
EOF
    start_bg "registry-$which" docker-registry serve "$dir/registry/$which.yml"
  done
  wait_for "the public registry" 20 curl -sf "http://$registry/v2/"
  wait_for "the private registry" 20 bash -c "curl -s -o /dev/null -w '%{http_code}' http://$private_registry/v2/ | grep -q 401"
  python3 "$here/images/build_images.py" push --registry "$registry" --sleep "$SLEEP_BIN/sleep" \
    --pause "$NODE_BIN/pause" --busybox "$(command -v busybox)" \
    --private "$private_registry" --user kip-test --password-file "$pw_file" > "$dir/images.txt"
}

start_containerd() {
  mkdir -p "$dir/containerd" "$dir/cni/conf" "$dir/cni/ipam" "$dir/certs.d/$registry" "$dir/certs.d/$private_registry"
  local r
  for r in "$registry" "$private_registry"; do
    printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$r" "$r" \
      > "$dir/certs.d/$r/hosts.toml"
  done
  cat > "$dir/cni/conf/10-kip.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "kip-real-node",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "dataDir": "$dir/cni/ipam", "ranges": [[{"subnet": "$pod_subnet"}]]}},
    {"type": "loopback"}
  ]
}
EOF
  # restrict_oom_score_adj: this machine forbids lowering oom_score_adj, which runc otherwise
  # does for every sandbox ("can't get final child's PID from pipe: EOF").
  cat > "$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$registry/kip-test/pause:3.10"
  restrict_oom_score_adj = true
  # Pod network namespaces under the state folder, so stopping the node finds every one.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
EOF
  start_bg containerd containerd --config "$dir/containerd/config.toml"
  wait_for containerd 30 ctr --address "$sock" version
}

node_credentials() {
  local pki=$dir/pki
  mkdir -p "$pki"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/node.key" -out "$pki/node.csr" \
    -subj "/O=system:nodes/CN=system:node:$NODE_NAME" 2>/dev/null
  openssl x509 -req -in "$pki/node.csr" -CA "$cluster_dir/pki/ca.crt" -CAkey "$cluster_dir/pki/ca.key" \
    -CAcreateserial -days 30 -out "$pki/node.crt" 2>/dev/null
  chmod 600 "$pki/node.key"
  local server
  server=$(kc config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  kubectl config --kubeconfig "$dir/kubeconfig" set-cluster local --server "$server" \
    --certificate-authority "$cluster_dir/pki/ca.crt" --embed-certs >/dev/null
  kubectl config --kubeconfig "$dir/kubeconfig" set-credentials "$NODE_NAME" \
    --client-certificate "$pki/node.crt" --client-key "$pki/node.key" --embed-certs >/dev/null
  kubectl config --kubeconfig "$dir/kubeconfig" set-context local --cluster local --user "$NODE_NAME" >/dev/null
  kubectl config --kubeconfig "$dir/kubeconfig" use-context local >/dev/null
}

# cgroup v1: the root must exist in every hierarchy before the kubelet starts.
make_cgroup_root() {
  local h
  for h in /sys/fs/cgroup/*/; do
    case $h in */unified/) continue ;; esac
    mkdir -p "$h$cgroup_root"
    if [ -f "${h}cpuset.cpus" ] && [ -z "$(cat "$h$cgroup_root/cpuset.cpus")" ]; then
      cat "${h}cpuset.cpus" > "$h$cgroup_root/cpuset.cpus"
      cat "${h}cpuset.mems" > "$h$cgroup_root/cpuset.mems"
    fi
  done
}

# Deepest first; a cgroup with a process left in it stays, and the caller reports the process.
remove_cgroup_root() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$cgroup_root" ] || continue
    find "$h$cgroup_root" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

start_kubelet() {
  mkdir -p "$dir/kubelet" "$dir/pod-logs"
  make_cgroup_root
  cat > "$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine runs cgroup v1 without systemd; from 1.35 the kubelet refuses v1 unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_root
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
address: 127.0.0.1
port: $CLUSTER_KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $((CLUSTER_KUBELET_PORT + 1))
podLogsDir: $dir/pod-logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $cluster_dir/pki/ca.crt}
authorization: {mode: AlwaysAllow}
registerWithTaints:
  - {key: kip.test/real-node, value: "true", effect: NoSchedule}
# The node shares the machine's disk: evict only when it is really full.
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
imageMaximumGCAge: $REAL_NODE_IMAGE_MAX_AGE
# Zero would mean the default (2m), which must stay below imageMaximumGCAge.
imageMinimumGCAge: 1s
maxPods: 30
EOF
  start_bg kubelet kubelet --config "$dir/kubelet.yaml" --kubeconfig "$dir/kubeconfig" \
    --hostname-override "$NODE_NAME" --root-dir "$dir/kubelet" --cert-dir "$dir/pki" \
    --node-labels "kip.test/real-node=true" --v 1
  wait_for "the kubelet" 60 curl -sf "http://127.0.0.1:$((CLUSTER_KUBELET_PORT + 1))/healthz"
}

cmd_up() {
  preflight
  paths
  [ -x "$NODE_BIN/kubelet" ] || die "kubelet not built; run tests/cluster/build.sh node"
  [ -d "$dir" ] && cmd_down
  mkdir -p "$dir/logs"
  local t0; t0=$(date +%s%N)
  start_registries
  start_containerd
  node_credentials
  start_kubelet
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  log "$NODE_NAME: kubelet $KUBE_VERSION + containerd $(containerd --version | awk '{print $3}') started in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s; registries $registry, $private_registry (auth)"
}

stop_pid() {  # name: TERM, then KILL after 5 s
  local pid; pid=$(pid_of "$1") || return 0
  kill "$pid" 2>/dev/null || true
  local tries=25
  while kill -0 "$pid" 2>/dev/null && [ $((tries -= 1)) -gt 0 ]; do sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/$1.pid"
}

# Processes this node started: the daemons, and the shims and containers under its state folder.
node_pids() {
  { pgrep -f -- "$dir/" || true; pgrep -f -- "-address $sock" || true; } | sort -u | grep -vx "$$" || true
}

cmd_down() {
  [ -d "$dir" ] || return 0
  paths
  stop_pid kubelet
  if pid_of containerd >/dev/null; then
    # Through the CRI, so containerd tears down each pod's network and mounts itself.
    local pods; pods=$(cri pods -q 2>/dev/null || true)
    if [ -n "$pods" ]; then
      # shellcheck disable=SC2086
      cri stopp $pods >/dev/null 2>&1 || true
      # shellcheck disable=SC2086
      cri rmp -f $pods >/dev/null 2>&1 || true
    fi
  fi
  stop_pid containerd
  stop_pid registry-public
  stop_pid registry-private
  local pids; pids=$(node_pids)
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  # Whatever is still mounted under the node's folder (sandbox shm, overlay rootfs, kubelet
  # volumes), deepest first.
  local m
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-' || true); do
    # A namespace of this node's pods holds an address of its subnet.
    if ip netns exec "$ns" ip -4 addr 2>/dev/null | grep -q "inet ${pod_subnet%.0/24}\."; then
      ip netns delete "$ns" 2>/dev/null || true
    fi
  done
  ip link delete "$bridge" 2>/dev/null || true
  remove_cgroup_root
  rm -rf "$dir"
  [ -z "$(node_pids)" ] || die "processes of $NODE_NAME are still running: $(node_pids | tr '\n' ' ')"
  ! grep -q " $dir/" /proc/mounts || die "mounts under $dir are left: $(grep " $dir/" /proc/mounts | awk '{print $2}' | tr '\n' ' ')"
  local left; left=$(find /sys/fs/cgroup/*/"$cgroup_root" -maxdepth 0 -type d 2>/dev/null | head -3 | tr '\n' ' ' || true)
  [ -z "$left" ] || die "cgroups of $NODE_NAME are left (a process still runs in them?): $left"
  log "$NODE_NAME stopped; no process, mount or cgroup of it is left"
}

cmd_status() {
  local name
  for name in registry-public registry-private containerd kubelet; do
    if pid_of "$name" >/dev/null; then echo "  $name: running (pid $(pid_of "$name"))"; else echo "  $name: not running"; fi
  done
}

cmd_healthy() {
  local name
  for name in registry-public registry-private containerd kubelet; do pid_of "$name" >/dev/null || return 1; done
}

cmd_env() {
  paths
  printf 'REAL_NODE=%s\nREAL_NODE_DIR=%s\nREAL_NODE_CRI=unix://%s\nREGISTRY=%s\nPRIVATE_REGISTRY=%s\n' \
    "$NODE_NAME" "$dir" "$sock" "$registry" "$private_registry"
  printf 'PRIVATE_REGISTRY_USER=kip-test\nPRIVATE_REGISTRY_PASSWORD_FILE=%s\nCRICTL=%s\nIMAGE_TOOL=%s\n' \
    "$dir/registry/password" "$NODE_BIN/crictl" "$here/images/build_images.py"
  # What the running kubelet was given, not this shell's setting.
  printf 'IMAGE_MAX_AGE=%s\n' "$(sed -n 's/^imageMaximumGCAge: //p' "$dir/kubelet.yaml" 2>/dev/null)"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  healthy) cmd_healthy ;;
  env) cmd_env ;;
  images) paths; cri images --digests ;;
  *) echo "usage: $0 up|down|status|healthy|env|images" >&2; exit 2 ;;
esac
