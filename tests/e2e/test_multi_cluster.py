# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The deploy, status and remove playbooks over an inventory of three clusters, run in parallel.

Two small local clusters of their own (tests/cluster/clusters.sh; never the main cluster `kip`):
one converges, one gets an image that cannot be pulled (kwok backs off any image named
``pull-fails``), and a third inventory host points at a port nobody listens on, with a token. One
summary must name both failures and why, a second run must change nothing anywhere, and --limit
must pick clusters. Clusters this module starts are stopped at its end; set
KIP_E2E_CLUSTERS="name:port name:port" to use (and keep) others, e.g. those of `make clusters`.
About 2.5 minutes: two cluster starts (15 s each) and four playbook runs (15-45 s each).
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from support import REPO

pytestmark = pytest.mark.cluster

CLUSTERS_SH = REPO / "tests" / "cluster" / "clusters.sh"
CLUSTER_SH = REPO / "tests" / "cluster" / "cluster.sh"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
TOKEN = f"e2e-token-{uuid.uuid4().hex}"
GOOD_IMAGE = "registry.example/team/app:1"
BAD_IMAGE = "registry.example/team/pull-fails:1"
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", re.M)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    """Nothing from the user's or the main cluster's connection: each host names its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8S_AUTH_")}
    env["KUBECONFIG"] = "/nonexistent/kubeconfig-of-no-cluster"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


@pytest.fixture(scope="module")
def clusters():
    """{name: kubeconfig} of two small clusters, started here unless running already."""
    spec = os.environ.get("KIP_E2E_CLUSTERS", "kip-e2e-a:6450 kip-e2e-b:6451")
    entries = spec.split()
    assert len(entries) == 2, f"KIP_E2E_CLUSTERS must name two clusters as name:port, got {spec!r}"
    env = dict(os.environ, CLUSTERS=spec, CLUSTER_NODES="1")
    running = set()
    for entry in entries:
        name, port = entry.split(":")
        kip_cache = os.environ.get("KIP_CACHE") or str(Path.home() / ".cache" / "kip-image-puller")
        status = subprocess.run([str(CLUSTER_SH), "status"], env=dict(
            env, CLUSTER_NAME=name, CLUSTER_API_PORT=port, KIP_CLUSTER_DIR=f"{kip_cache}/cluster-{name}",
            CLUSTER_REAL_NODES="0"), capture_output=True, text=True, check=False)
        if status.returncode == 0:
            running.add(name)
    # kwokctl writes every cluster it creates into $KUBECONFIG (here the main cluster's) unless told not to
    main_kubeconfig = Path(os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
    before = main_kubeconfig.read_bytes() if main_kubeconfig.is_file() else None
    up = subprocess.run([str(CLUSTERS_SH), "up"], env=env, capture_output=True, text=True, check=False)
    assert up.returncode == 0, f"clusters.sh up failed:\n{up.stderr}"
    assert (main_kubeconfig.read_bytes() if main_kubeconfig.is_file() else None) == before, \
        f"starting the other clusters changed {main_kubeconfig}"
    found = dict(line.split(" ", 1) for line in up.stdout.splitlines() if " " in line)
    assert len(found) == 2 and all(Path(k).is_file() for k in found.values()), f"clusters.sh up printed {up.stdout!r}"
    yield found
    started = [entry for entry in entries if entry.split(":")[0] not in running]
    if started:
        subprocess.run([str(CLUSTERS_SH), "down"], env=dict(env, CLUSTERS=" ".join(started)),
                       capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def inventory(clusters, tmp_path_factory):
    """A YAML inventory: group vars for the image set, per-host connection, a per-host image set."""
    (good, good_kc), (bad, bad_kc) = sorted(clusters.items())
    namespace = f"multi-{uuid.uuid4().hex[:6]}"
    data = {"all": {"children": {"lab": {
        "vars": {"image_puller_namespace": namespace,
                 "image_puller_images": [{"name": "app", "image": GOOD_IMAGE}]},
        "hosts": {
            good: {"ansible_connection": "local", "image_puller_kubeconfig": good_kc},
            bad: {"ansible_connection": "local", "image_puller_kubeconfig": bad_kc,
                  "image_puller_images": [{"name": "app", "image": GOOD_IMAGE}, {"name": "broken", "image": BAD_IMAGE}],
                  "image_puller_wait_timeout": 10},
            "gone": {"ansible_connection": "local", "image_puller_host": f"https://127.0.0.1:{_free_port()}",
                     "image_puller_api_key": TOKEN, "image_puller_validate_certs": False,
                     "image_puller_wait_timeout": 5},
        }}}}}
    path = tmp_path_factory.mktemp("inventory") / "clusters.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    yield {"path": path, "good": good, "bad": bad, "namespace": namespace, "kubeconfigs": clusters}
    # leave nothing behind on the clusters, whatever the test did
    for kubeconfig in clusters.values():
        subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "delete", "namespace", namespace, "--wait=false",
                        "--ignore-not-found"], capture_output=True, check=False, env=_kubectl_env())


def _kubectl_env() -> dict[str, str]:
    out = subprocess.run([str(REPO / "tests" / "cluster" / "build.sh"), "paths"], capture_output=True, text=True, check=True).stdout
    paths = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return dict(os.environ, PATH=os.pathsep.join([paths["K8S_BIN"], os.environ.get("PATH", "")]))


def playbook(name: str, inventory_path: Path, *args: str) -> tuple[int, str, dict[str, tuple[int, int]]]:
    """One run: rc, stdout+stderr, and per host (changed, failed) from the recap."""
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory_path), f"kip.image_puller.{name}", "--forks", "5", *args],
                          env=_env(), capture_output=True, text=True, check=False, timeout=600)
    out = proc.stdout + proc.stderr
    assert TOKEN not in out, "the token of host 'gone' appeared in the output"
    recap = {host: (int(changed), int(failed)) for host, changed, failed in RECAP.findall(out)}
    return proc.returncode, out, recap


def summary_lines(out: str) -> list[str]:
    """The lines of the one summary the run printed."""
    blocks = re.findall(r"TASK \[Show the summary over all clusters\].*?\n(ok: .*?\n})", out, re.S)
    assert len(blocks) == 1, f"expected exactly one summary, found {len(blocks)}:\n{out}"
    return re.findall(r'^\s+"(.*)",?$', blocks[0], re.M)


def test_three_clusters_one_summary_second_run_no_change_and_limit(inventory):
    good, bad, path = inventory["good"], inventory["bad"], inventory["path"]
    t0 = time.monotonic()

    rc, out, recap = playbook("deploy", path)
    print(f"deploy: {time.monotonic() - t0:.1f} s")
    assert rc != 0, "a failed cluster must fail the run"
    assert set(recap) == {good, bad, "gone"}
    assert recap[good][1] == 0 and recap[bad][1] == 1 and recap["gone"][1] == 1, recap
    lines = summary_lines(out)
    table = {line.split()[0]: line for line in lines[1:4]}
    # every eligible node (the gpu node is tainted, so not eligible) caches the one image
    assert re.match(rf"{good}\s+converged\s+(\d+)/\1\s+1 cached everywhere\s+fits$", table[good]), lines
    assert re.match(rf"{bad}\s+failed\s+0/[1-9]\d*\s+2 NOT cached everywhere\s+fits$", table[bad]), lines
    assert table["gone"].split()[1] == "failed", lines
    text = "\n".join(lines)
    assert re.search(rf"{bad}: image {re.escape(BAD_IMAGE)} on node \S+: ImagePullBackOff", text), text
    assert re.search(r"gone: .*Connection refused", text), text

    # A second run changes nothing anywhere, and tells the same story.
    t0 = time.monotonic()
    rc, out, recap = playbook("deploy", path)
    print(f"second deploy: {time.monotonic() - t0:.1f} s")
    assert rc != 0
    assert {host: figures[0] for host, figures in recap.items()} == {good: 0, bad: 0, "gone": 0}, recap
    assert "ImagePullBackOff" in "\n".join(summary_lines(out))

    # --limit picks clusters: the status of the good one only, from an inventory made of its kubeconfig.
    plugin_source = path.with_name("lab.kubeconfig.yml")
    plugin_source.write_text(yaml.safe_dump({
        "plugin": "kip.image_puller.kubeconfig", "kubeconfigs": list(inventory["kubeconfigs"].values())}), encoding="utf-8")
    t0 = time.monotonic()
    rc, out, recap = playbook("status", plugin_source, "--limit", f"kwok-{good}",
                              "-e", f"image_puller_namespace={inventory['namespace']}")
    print(f"status: {time.monotonic() - t0:.1f} s")
    assert rc == 0, out
    assert set(recap) == {f"kwok-{good}"}
    lines = summary_lines(out)
    assert len(lines) == 2 and re.match(rf"kwok-{good}\s+converged\s+(\d+)/\1\s", lines[1]), lines

    # Remove, limited to the cluster whose rollout failed: its DaemonSet goes. (The namespace stays, so
    # that the role does not list every kind of object in it: most of a minute per cluster here.)
    t0 = time.monotonic()
    rc, out, recap = playbook("remove", path, "--limit", bad, "-e", "image_puller_create_namespace=false")
    print(f"remove: {time.monotonic() - t0:.1f} s")
    assert rc == 0, out
    assert set(recap) == {bad} and recap[bad][0] > 0 and recap[bad][1] == 0, recap
    assert re.match(rf"{bad}\s+removed\s", summary_lines(out)[1]), out
    left = subprocess.run(["kubectl", "--kubeconfig", inventory["kubeconfigs"][bad], "get", "daemonset", "-n",
                           inventory["namespace"], "-o", "name"], capture_output=True, text=True, check=True, env=_kubectl_env())
    assert left.stdout.strip() == "", f"{bad} still has {left.stdout}"
