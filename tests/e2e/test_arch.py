# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-architecture images through the public playbooks, on the kwok nodes (amd64) and the ppc64le pool.

ansible-playbook kip.image_puller.deploy with entries that carry an arch map makes one DaemonSet per
architecture (<name>-<arch>), whose pods run only on nodes of that architecture, each with its own image;
going back to a plain list leaves no per-architecture DaemonSet, and kip.image_puller.remove leaves nothing.
The ppc64le pool is tainted kip.test/arch (so that other tests see the amd64 nodes only): every case here
tolerates it. The real node's taint keeps the pods off it; kwok pods run whatever the image.
"""
from __future__ import annotations

import uuid

import pytest

from support import REPO
from test_real_node import Playbook, ok

pytestmark = pytest.mark.cluster

SEEDS = REPO / "tests" / "unit" / "fixtures" / "seeds"
TOLERATE_ARCH_POOL = [{"key": "kip.test/arch", "operator": "Exists", "effect": "NoSchedule"}]
NAME = "arch"
PLAIN = ["web=registry.example/web:1"]
MIXED = PLAIN + [
    {"name": "base", "arch": {"amd64": "registry.example/amd64/base:1", "ppc64le": "registry.example/ppc64le/base:1"}},
    {"name": "amd-only", "arch": {"amd64": "registry.example/amd-only:1"}},
]
PPC_ONLY = PLAIN + [{"name": "base", "arch": {"ppc64le": "registry.example/ppc64le/base:1"}}]


@pytest.fixture(name="playbook")
def fixture_playbook(cluster_env, tmp_path) -> Playbook:
    return Playbook(cluster_env, tmp_path)


@pytest.fixture(name="role_namespace")
def fixture_role_namespace(kubectl):
    name = f"e2e-arch-{uuid.uuid4().hex[:8]}"
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(name="arch_of", scope="module")
def fixture_arch_of(kubectl) -> dict:
    """Node name -> kubernetes.io/arch, for the nodes a DaemonSet tolerating the ppc64le pool's taint runs on."""
    nodes = kubectl.json("get", "nodes")["items"]
    eligible = {node["metadata"]["name"]: node["metadata"]["labels"]["kubernetes.io/arch"] for node in nodes
                if all(taint["key"] == "kip.test/arch" for taint in node["spec"].get("taints") or [])}
    assert sorted(set(eligible.values())) == ["amd64", "ppc64le"], "the cluster has no ppc64le pool (CLUSTER_ARCH_POOL=0?)"
    return eligible


def daemonsets(kubectl, namespace: str, instance: str = NAME) -> dict:
    found = kubectl.json("get", "daemonsets", "-n", namespace, "-l", f"app.kubernetes.io/instance={instance}")["items"]
    return {ds["metadata"]["name"]: ds for ds in found}


def pods_by_node(kubectl, namespace: str, instance: str = NAME) -> dict:
    """Node -> (owning DaemonSet, [(container, image)]) of the live pods."""
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={instance}")["items"]
    live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    return {pod["spec"]["nodeName"]: (pod["metadata"]["ownerReferences"][0]["name"],
                                      [(c["name"], c["image"]) for c in pod["spec"]["containers"]]) for pod in live}


def expect(arch_of: dict, per_arch: dict) -> dict:
    """The pods wanted: per node of an architecture in per_arch, its DaemonSet and containers."""
    return {node: per_arch[arch] for node, arch in arch_of.items() if arch in per_arch}


def test_one_daemonset_per_architecture_then_another_shape_then_nothing(playbook, kubectl, role_namespace, arch_of):
    variables = {"namespace": role_namespace, "daemonset_name": NAME, "tolerations": TOLERATE_ARCH_POOL, "wait_timeout": 120}
    web = ("web", "registry.example/web:1")

    # today's shape first: one DaemonSet on every eligible node
    ok(playbook("deploy", images=PLAIN, **variables))
    assert pods_by_node(kubectl, role_namespace) == {node: ("arch", [web]) for node in arch_of}

    mixed = playbook("deploy", images=MIXED, **variables)
    ok(mixed)
    assert ("per-architecture DaemonSets (nodes of other architectures get no pod): arch-amd64 (kubernetes.io/arch=amd64)"
            in mixed.stdout)
    assert "skipped on ppc64le (no ppc64le image and no image to fall back to): amd-only" in mixed.stdout
    assert "deleted (no longer wanted): arch" in mixed.stdout
    sets = daemonsets(kubectl, role_namespace)
    assert sorted(sets) == ["arch-amd64", "arch-ppc64le"]
    for name, ds in sets.items():
        arch = name.rsplit("-", 1)[1]
        assert ds["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/arch": arch}
        assert ds["status"]["numberReady"] == ds["status"]["desiredNumberScheduled"] == list(arch_of.values()).count(arch)
    assert pods_by_node(kubectl, role_namespace) == expect(arch_of, {
        "amd64": ("arch-amd64", [web, ("base", "registry.example/amd64/base:1"), ("amd-only", "registry.example/amd-only:1")]),
        "ppc64le": ("arch-ppc64le", [web, ("base", "registry.example/ppc64le/base:1")])})

    # kip.image_puller.status reports every DaemonSet of the instance
    status = playbook("status", namespace=role_namespace, daemonset_name=NAME)
    ok(status)
    for arch in ("amd64", "ppc64le"):
        count = list(arch_of.values()).count(arch)
        assert f"DaemonSet {role_namespace}/arch-{arch}: {count}/{count} eligible nodes ready" in status.stdout, status.stdout

    # an architecture no entry names any more: its DaemonSet goes, its nodes get no pod
    ppc_only = playbook("deploy", images=PPC_ONLY, **variables)
    ok(ppc_only)
    assert "deleted (no longer wanted): arch-amd64" in ppc_only.stdout
    assert sorted(daemonsets(kubectl, role_namespace)) == ["arch-ppc64le"]
    assert pods_by_node(kubectl, role_namespace) == expect(arch_of, {
        "ppc64le": ("arch-ppc64le", [web, ("base", "registry.example/ppc64le/base:1")])})

    ok(playbook("remove", images=PPC_ONLY, **variables))
    assert daemonsets(kubectl, role_namespace) == {}
    assert kubectl.run("get", "namespace", role_namespace, check=False).returncode != 0, "the namespace the role made is gone"


def test_the_seed_002_example_deploys_as_given_then_a_plain_list_replaces_it(playbook, kubectl, role_namespace, arch_of):
    """The jarvice image list verbatim: ubuntu per architecture, abc123 for amd64 only (a private registry's
    image, with its Secret jarvice-docker as the pull secret; kwok nodes pull nothing, so the Secret need not
    exist for the pods to run). Then a plain list: one DaemonSet again, the per-architecture ones gone."""
    variables = {"namespace": role_namespace, "daemonset_name": "jarvice", "tolerations": TOLERATE_ARCH_POOL, "wait_timeout": 120}
    deployed = playbook("deploy", config=str(SEEDS / "002-jarvice-image.config"), **variables)
    ok(deployed)
    assert "skipped on ppc64le (no ppc64le image and no image to fall back to): abc123" in deployed.stdout
    sets = daemonsets(kubectl, role_namespace, "jarvice")
    assert sorted(sets) == ["jarvice-amd64", "jarvice-ppc64le"]
    assert all(ds["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "jarvice-docker"}] for ds in sets.values())
    assert pods_by_node(kubectl, role_namespace, "jarvice") == expect(arch_of, {
        "amd64": ("jarvice-amd64", [("ubuntu", "docker.io/library/ubuntu:xenial"), ("abc123", "docker.io/kenhill/abc123:test")]),
        "ppc64le": ("jarvice-ppc64le", [("ubuntu", "docker.io/ppc64le/ubuntu:xenial")])})

    plain = playbook("deploy", images=["docker.io/library/ubuntu:xenial"], **variables)
    ok(plain)
    assert "deleted (no longer wanted): jarvice-amd64, jarvice-ppc64le" in plain.stdout
    assert sorted(daemonsets(kubectl, role_namespace, "jarvice")) == ["jarvice"]
    assert pods_by_node(kubectl, role_namespace, "jarvice") == {
        node: ("jarvice", [("ubuntu", "docker.io/library/ubuntu:xenial")]) for node in arch_of}
