#!/usr/bin/env python3
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Wall time and peak memory of the image_puller_quota pre-flight with many nodes.

Two measurements, each labelled in the output:

  in-memory   Node lists generated here, served as raw JSON pages of 500 like the
              API server's, then decoded, reduced and checked exactly as the
              module does (json.loads per page, NodeInfo per node, the check).
              No network. Default sizes 1,000 and 5,000 nodes.
  cluster     The module's core (preflight with a real kubernetes.core client)
              against the local cluster, when a kubeconfig is found
              (K8S_AUTH_KUBECONFIG or KUBECONFIG). Its size is whatever the
              cluster has (`CLUSTER_NODES=5000 make cluster`).

Targets (issue 4): under 3 s and under 300 MB at 5,000 nodes. This script
prints figures and never asserts.

    .venv/bin/python benchmarks/quota_preflight.py [--nodes 1000 5000] [--skip-cluster]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    """Wall time from a plain run (tracemalloc slows allocation-heavy code several times), then peak memory from a second."""
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    tracemalloc.reset_peak()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak, result


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

    elapsed, peak, result = measure(run)
    size = sum(len(p) for p in raw) / 2**20
    print(f"[in-memory] {count:>5} nodes ({size:.0f} MB of node JSON in {len(raw)} pages): "
          f"{elapsed:.3f} s wall, peak Python memory {peak / 2**20:.1f} MB (tracemalloc), process max RSS so far {maxrss_mb():.0f} MB; "
          f"eligible {result['eligible_nodes']}, fits {result['fits']}")


def on_cluster() -> None:
    kubeconfig = os.environ.get("K8S_AUTH_KUBECONFIG") or os.environ.get("KUBECONFIG")
    if not kubeconfig or not Path(kubeconfig).exists():
        print("[cluster] skipped: no kubeconfig (set K8S_AUTH_KUBECONFIG or KUBECONFIG, e.g. via `make bench`)")
        return
    try:
        from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
        from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.preflight import ClusterReader, preflight
    except ImportError as exc:
        print(f"[cluster] skipped: {exc}")
        return
    client = get_api_client(module=None, kubeconfig=kubeconfig)
    reader = ClusterReader(client)
    reader.resource("Node", "v1")  # discovery once, outside the measurement, as the module's client start-up
    elapsed, peak, result = measure(lambda: preflight(reader, definition()))
    print(f"[cluster]   {result['nodes']['total']:>5} nodes (local cluster, real API, pages of {reader.page_size}): "
          f"{elapsed:.3f} s wall, peak Python memory {peak / 2**20:.1f} MB (tracemalloc), process max RSS so far {maxrss_mb():.0f} MB; "
          f"eligible {result['eligible_nodes']}, fits {result['fits']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 5000], help="in-memory node counts")
    parser.add_argument("--skip-cluster", action="store_true", help="only the in-memory measurement")
    args = parser.parse_args()
    print("image_puller_quota pre-flight; targets at 5,000 nodes: < 3 s, < 300 MB")
    for count in args.nodes:
        in_memory(count)
    if not args.skip_cluster:
        on_cluster()


if __name__ == "__main__":
    main()
