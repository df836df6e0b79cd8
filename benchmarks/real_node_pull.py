# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: caching N images of a known size on the real node, the role against the floor.

The floor is crictl pulling the same images one after another from the same local registry
(the kubelet pulls one image at a time too, serializeImagePulls). Alternating, REPS times, from
an empty store each time:
  - serial crictl pulls: the wall time of the N pulls;
  - the role (ansible-playbook kip.image_puller.deploy, images only on real-node-0): the time
    the node took to cache them, from the moment the puller pod is first seen in the API to the
    moment the last image is in the node's store (both polled every 0.2 s during the run: the
    pod through the API, the store through the CRI socket), and the wall time of the whole
    playbook run.
Prints medians; asserts nothing. Target: caching at most 1.2 x the serial pulls.

Run from `make bench` (the local cluster with its real node must be up):
    python benchmarks/real_node_pull.py [--count 10] [--size-mib 50] [--reps 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SH = REPO / "tests" / "cluster" / "cluster.sh"
NAMESPACE = "kip-bench-pull"


def facts() -> dict[str, str]:
    out = subprocess.run([str(CLUSTER_SH), "real-node-env"], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def crictl(node: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [node["CRICTL"], "--runtime-endpoint", node["REAL_NODE_CRI"], "--image-endpoint", node["REAL_NODE_CRI"], *args]
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def forget(node: dict[str, str], refs: list[str]) -> None:
    for ref in refs:
        crictl(node, "rmi", ref, check=False)


def serial_pulls(node: dict[str, str], refs: list[str]) -> float:
    started = time.monotonic()
    for ref in refs:
        crictl(node, "pull", ref)
    return time.monotonic() - started


class Observer(threading.Thread):
    """Polls, while the role runs, for the puller pod in the API and for each image in the node's store."""

    def __init__(self, node: dict[str, str], refs: list[str]):
        super().__init__(daemon=True)
        self.node, self.refs = node, refs
        self.pod_seen: float | None = None
        self.stored: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set() and len(self.stored) < len(self.refs):
            now = time.monotonic()
            if self.pod_seen is None:
                pods = subprocess.run(["kubectl", "get", "pods", "-n", NAMESPACE, "-o", "name"],
                                      capture_output=True, text=True, check=False).stdout.split()
                if pods:
                    self.pod_seen = now
            else:
                listed = json.loads(crictl(self.node, "images", "-o", "json").stdout)["images"]
                tags = {tag for image in listed for tag in image.get("repoTags") or []}
                for ref in self.refs:
                    if ref in tags:
                        self.stored.setdefault(ref, now)
            time.sleep(0.2)


def role(node: dict[str, str], refs: list[str], workdir: Path) -> tuple[float, float]:
    variables = {
        "image_puller_namespace": NAMESPACE, "image_puller_daemonset_name": "bench",
        "image_puller_images": [{"name": f"img-{i}", "image": ref} for i, ref in enumerate(refs)],
        "image_puller_puller_image": f"{node['REGISTRY']}/kip-test/puller:1",
        "image_puller_node_selector": {"kip.test/real-node": "true"},
        "image_puller_tolerations": [{"key": "kip.test/real-node", "operator": "Exists", "effect": "NoSchedule"}],
        "image_puller_wait_timeout": 900,
    }
    extra = workdir / "vars.json"
    extra.write_text(json.dumps(variables))
    ansible = Path(sys.executable).with_name("ansible-playbook")
    observer = Observer(node, refs)
    observer.start()
    started = time.monotonic()
    run = subprocess.run([str(ansible), "kip.image_puller.deploy", "-e", f"@{extra}"], capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    observer.done.set()
    observer.join()
    if run.returncode != 0:
        raise SystemExit(f"the deploy failed:\n{run.stdout[-4000:]}")
    missing = sorted(set(refs) - set(observer.stored))
    if observer.pod_seen is None or missing:
        raise SystemExit(f"the deploy succeeded but the observer saw no pod or not every image ({missing})")
    subprocess.run([str(ansible), "kip.image_puller.remove", "-e", f"@{extra}"], capture_output=True, check=True)
    return max(observer.stored.values()) - observer.pod_seen, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--size-mib", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    node = facts()
    pushed = subprocess.run([sys.executable, node["IMAGE_TOOL"], "bench", "--registry", node["REGISTRY"],
                             "--count", str(args.count), "--size-mib", str(args.size_mib)],
                            check=True, capture_output=True, text=True).stdout
    refs = [line.split()[0] for line in pushed.splitlines()]
    floor, caching, walls = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _rep in range(args.reps):
            forget(node, refs)
            floor.append(serial_pulls(node, refs))
            forget(node, refs)
            cached, wall = role(node, refs, Path(tmp))
            caching.append(cached)
            walls.append(wall)
    forget(node, refs)
    med = statistics.median
    print(f"{args.count} images x {args.size_mib} MiB from {node['REGISTRY']} to real-node-0, median of {args.reps} "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"  serial crictl pulls (floor)            {med(floor):7.1f} s   runs: {', '.join(f'{x:.1f}' for x in floor)}")
    print(f"  role: pod seen -> last image stored    {med(caching):7.1f} s   runs: {', '.join(f'{x:.1f}' for x in caching)}"
          f"   ratio to the floor: {med(caching) / med(floor):.2f} (target <= 1.2; polled every 0.2 s)")
    print(f"  role: whole ansible-playbook run       {med(walls):7.1f} s   runs: {', '.join(f'{x:.1f}' for x in walls)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
