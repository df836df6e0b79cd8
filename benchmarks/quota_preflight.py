# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wall time and peak memory of the image_puller_quota pre-flight with many nodes.

Two measurements, each labelled in the output:

  in-memory   Node lists generated here, served as raw JSON pages of 500 like the
              API server's, then decoded, reduced and checked exactly as the
              module does (json.loads per page, NodeInfo per node, the check).
              No network. Default sizes 1,000 and 5,000 nodes.
  cluster     The module's core (preflight with a real kubernetes.core client)
              against the real cluster, when a kubeconfig is found
              (K8S_AUTH_KUBECONFIG, else KUBECONFIG). Its size is whatever the
              cluster has (`CLUSTER_NODES=5000 make cluster`). Reported: the
              pre-flight with a ready client, the first run including client
              creation and API discovery, and the process's max RSS.

Each measurement runs in its own process, so each max RSS is its own.

Targets (issue 4): under 3 s and under 300 MB at 5,000 nodes. This script
prints figures and never asserts.

    .venv/bin/python benchmarks/quota_preflight.py [--nodes 1000 5000] [--skip-cluster]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

try:
    from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.nodes import NodeInfo
    from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quota import check_daemonset
except ImportError:
    sys.exit("run with the project venv (make venv), which links the collection as ansible_collections.kip.image_puller")

NAMESPACE = "bench-quota"
PAGE = 500


def definition(images: int = 5) -> dict:
    containers = [{"name": f"img{i}", "image": f"registry.example/img{i}:1", "command": ["sleep", "infinity"],
                   "resources": {"requests": {"cpu": ".05", "memory": "10Mi"}, "limits": {"cpu": ".2", "memory": "20Mi"}}}
                  for i in range(images)]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "bench-image-puller", "namespace": NAMESPACE},
            "spec": {"selector": {"matchLabels": {"app": "bench"}},
                     "template": {"metadata": {"labels": {"app": "bench"}},
                                  "spec": {"containers": containers, "nodeSelector": {"kubernetes.io/os": "linux"},
                                           "tolerations": [{"key": "dedicated", "operator": "Exists"}]}}}}


def fake_node(i: int) -> dict:
    """A node about as large as a real one: labels, annotations, a few taints, conditions, 30 cached images."""
    taints = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}] if i % 10 == 0 else []
    if i % 97 == 0:
        taints.append({"key": "maintenance", "value": "true", "effect": "NoExecute"})
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": f"node-{i:05d}", "uid": f"00000000-0000-0000-0000-{i:012d}",
                     "labels": {"kubernetes.io/os": "windows" if i % 50 == 0 else "linux", "kubernetes.io/arch": "amd64",
                                "kubernetes.io/hostname": f"node-{i:05d}", "topology.kubernetes.io/zone": f"zone-{i % 3}",
                                "node.kubernetes.io/instance-type": "m5.xlarge", "pool": f"pool-{i % 7}"},
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {"podCIDR": f"10.{i // 256 % 256}.{i % 256}.0/24", "taints": taints},
        "status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}, "allocatable": {"cpu": "3900m", "memory": "15Gi", "pods": "110"},
                   "conditions": [{"type": t, "status": "False", "reason": "KubeletHasSufficient" + t}
                                  for t in ("MemoryPressure", "DiskPressure", "PIDPressure")]
                   + [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                   "images": [{"names": [f"registry.example/library/image-{j}@sha256:{j:064d}", f"registry.example/library/image-{j}:v{j}"],
                               "sizeBytes": 10_000_000 + j} for j in range(30)],
                   "nodeInfo": {"kubeletVersion": "v1.36.1", "osImage": "Linux", "containerRuntimeVersion": "containerd://2.0"}},
    }


def pages(count: int) -> list[bytes]:
    return [json.dumps({"kind": "NodeList", "items": [fake_node(i) for i in range(start, min(count, start + PAGE))]}).encode()
            for start in range(0, count, PAGE)]


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(run):
    """Wall time and max RSS from a plain run, then peak Python memory from a second run under tracemalloc.

    tracemalloc slows allocation-heavy code several times and keeps its own traces, so neither
    the time nor the RSS is taken while it runs.
    """
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    rss = maxrss_mb()
    tracemalloc.start()
    tracemalloc.reset_peak()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak, rss, result


def in_memory(count: int) -> None:
    raw = pages(count)
    quotas = [{"metadata": {"name": "compute", "namespace": NAMESPACE},
               "spec": {"hard": {"limits.memory": "1000Gi", "requests.cpu": "10000", "pods": "10000", "count/daemonsets.apps": "5"}},
               "status": {"used": {"limits.memory": "1Gi", "requests.cpu": "1", "pods": "3", "count/daemonsets.apps": "0"}}}]

    def run() -> dict:
        nodes = []
        for page in raw:
            nodes.extend(NodeInfo.from_node(n) for n in json.loads(page)["items"])
        return check_daemonset(definition(), namespace=NAMESPACE, nodes=nodes, resource_quotas=quotas, cluster_quotas=None)

    elapsed, peak, rss, result = measure(run)
    size = sum(len(p) for p in raw) / 2**20
    print(f"[in-memory] {count:>5} nodes ({size:.0f} MB of node JSON in {len(raw)} pages): "
          f"{elapsed:.3f} s wall, peak Python memory {peak / 2**20:.1f} MB (tracemalloc), "
          f"process max RSS {rss:.0f} MB (includes the generated JSON); eligible {result['eligible_nodes']}, fits {result['fits']}")


def kubeconfig_path() -> str | None:
    path = os.environ.get("K8S_AUTH_KUBECONFIG") or os.environ.get("KUBECONFIG")
    return path if path and Path(path).exists() else None


def on_cluster() -> None:
    """Runs in its own process (see main), so its max RSS is the pre-flight's and not the in-memory runs'."""
    started = time.perf_counter()
    try:
        from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
        from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.preflight import ClusterReader, preflight
    except ImportError as exc:
        print(f"[cluster] skipped: {exc}")
        return
    imported = time.perf_counter()
    rss_imports = maxrss_mb()
    # as one module run does: a client (kubeconfig, discovery cache), then the pre-flight
    reader = ClusterReader(get_api_client(module=None, kubeconfig=kubeconfig_path()))
    first = preflight(reader, definition())
    cold = time.perf_counter() - imported
    elapsed, peak, rss, result = measure(lambda: preflight(reader, definition()))
    print(f"[cluster]   {result['nodes']['total']:>5} nodes (local cluster, real API server, pages of {reader.page_size}): "
          f"pre-flight {elapsed:.3f} s wall (client ready); first run with client creation and discovery {cold:.3f} s "
          f"(+{imported - started:.3f} s imports); peak Python memory {peak / 2**20:.1f} MB (tracemalloc); "
          f"process max RSS {rss:.0f} MB ({rss_imports:.0f} MB after imports); eligible {result['eligible_nodes']}, fits {result['fits']}; "
          f"excluded {result['nodes']['excluded'] or 'none'}; load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 5000], help="in-memory node counts")
    parser.add_argument("--skip-cluster", action="store_true", help="only the in-memory measurement")
    parser.add_argument("--child", choices=("cluster", "in-memory"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "cluster":
        on_cluster()
        return
    if args.child == "in-memory":
        in_memory(args.nodes[0])
        return
    print("image_puller_quota pre-flight; targets at 5,000 nodes: < 3 s, < 300 MB")
    # one process per measurement: max RSS is a high-water mark and would carry over
    for count in args.nodes:
        subprocess.run([sys.executable, __file__, "--child", "in-memory", "--nodes", str(count)], check=True)
    if args.skip_cluster:
        return
    if kubeconfig_path() is None:
        print("[cluster] skipped: no kubeconfig (set K8S_AUTH_KUBECONFIG or KUBECONFIG, e.g. via `make bench`)")
        return
    subprocess.run([sys.executable, __file__, "--child", "cluster"], check=True)


if __name__ == "__main__":
    main()
