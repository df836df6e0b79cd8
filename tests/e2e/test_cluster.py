# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The local cluster behaves as the collection's tests need: real scheduling,
admission and RBAC, simulated nodes, and a simulated image pull failure."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support import REPO, wait_for

pytestmark = pytest.mark.cluster

VERSIONS = dict(
    line.split("=", 1)
    for line in (REPO / "tests" / "cluster" / "versions.env").read_text().splitlines()
    if line and not line.startswith("#")
)

RESOURCES = {"requests": {"cpu": "10m", "memory": "8Mi"}, "limits": {"cpu": "20m", "memory": "16Mi"}}


def restricted_container(name: str, image: str) -> dict:
    return {
        "name": name,
        "image": image,
        "resources": RESOURCES,
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def daemonset(name: str, *, tolerate_gpu: bool) -> dict:
    spec: dict = {"containers": [restricted_container("c", "registry.example/cache:1")]}
    if tolerate_gpu:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def test_every_node_is_ready_and_the_gpu_pool_is_tainted(kubectl):
    nodes = kubectl.json("get", "nodes")["items"]
    ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
    assert len(ready) == len(nodes) >= 4
    gpu = [n for n in nodes if "node-role.kubernetes.io/gpu" in n["metadata"].get("labels", {})]
    assert len(gpu) == 1
    assert gpu[0]["spec"]["taints"] == [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]


def test_server_reports_the_pinned_kubernetes_version(kubectl):
    version = json.loads(kubectl.run("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == VERSIONS["KUBE_VERSION"]
    assert version["clientVersion"]["gitVersion"] == VERSIONS["KUBE_VERSION"]


@pytest.mark.parametrize(
    "tolerate_gpu, expected",
    [(True, "all kwok nodes"), (False, "the plain nodes only")],
    ids=["a daemonset tolerating the gpu taint runs on the plain and gpu kwok nodes", "without the toleration it skips the gpu node"],
)
def test_daemonset_rolls_out_on_the_eligible_nodes(kubectl, namespace, tolerate_gpu, expected):
    # The real node (tainted kip.test/real-node) is left out: this DaemonSet tolerates neither it nor its image's absence.
    nodes = [n for n in kubectl.json("get", "nodes")["items"]
             if (n["metadata"].get("annotations") or {}).get("kwok.x-k8s.io/node") == "fake"]
    plain = [n for n in nodes if not n["spec"].get("taints")]
    # the ppc64le pool's taint (kip.test/arch) is tolerated by neither
    gpu = [n for n in nodes if "node-role.kubernetes.io/gpu" in n["metadata"].get("labels", {})]
    want = len(plain) + len(gpu) if tolerate_gpu else len(plain)
    kubectl.apply(daemonset("ds", tolerate_gpu=tolerate_gpu), "-n", namespace)
    done = kubectl.run("rollout", "status", "ds/ds", "-n", namespace, "--timeout=120s", check=False)
    assert done.returncode == 0, done.stderr
    status = kubectl.json("get", "ds", "ds", "-n", namespace)["status"]
    assert (status["desiredNumberScheduled"], status["numberReady"]) == (want, want), expected


def test_a_pod_over_the_namespace_quota_is_refused_by_admission(kubectl, namespace):
    kubectl.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "small"},
                   "spec": {"hard": {"limits.memory": "10Mi"}}}, "-n", namespace)
    wait_for(lambda: kubectl.json("get", "resourcequota", "small", "-n", namespace).get("status", {}).get("hard"),
             timeout=30, what="the quota controller to fill status.hard")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
           "spec": {"containers": [restricted_container("c", "registry.example/cache:1")]}}
    refused = kubectl.run("apply", "-f", "-", "-n", namespace, stdin=json.dumps(pod), check=False)
    assert refused.returncode != 0
    assert "(Forbidden)" in refused.stderr and "exceeded quota: small" in refused.stderr
    assert "limits.memory=16Mi" in refused.stderr


def test_a_service_account_without_a_binding_is_forbidden(kubectl, namespace):
    kubectl.run("create", "serviceaccount", "nobody", "-n", namespace)
    denied = kubectl.run("get", "daemonsets", "-n", namespace, f"--as=system:serviceaccount:{namespace}:nobody", check=False)
    assert denied.returncode != 0
    assert "(Forbidden)" in denied.stderr and 'cannot list resource "daemonsets"' in denied.stderr


def test_podsecurity_restricted_is_enforced(kubectl, namespace):
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
           "spec": {"containers": [{"name": "c", "image": "registry.example/cache:1"}]}}
    refused = kubectl.run("apply", "-f", "-", "-n", namespace, stdin=json.dumps(pod), check=False)
    assert refused.returncode != 0 and 'violates PodSecurity "restricted:latest"' in refused.stderr


@pytest.mark.parametrize("where", ["containers", "initContainers"],
                         ids=["a failing container image", "a failing init container image"])
def test_an_image_named_pull_fails_backs_off_and_never_becomes_ready(kubectl, namespace, where):
    bad = "registry.example/team/pull-fails:1"
    spec = {"containers": [restricted_container("good", "registry.example/cache:1")]}
    if where == "containers":
        spec["containers"].append(restricted_container("bad", bad))
    else:
        spec["initContainers"] = [restricted_container("bad", bad)]
    kubectl.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}, "-n", namespace)

    def waiting_reason():
        status = kubectl.json("get", "pod", "p", "-n", namespace).get("status", {})
        for cs in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
            if cs["name"] == "bad" and cs.get("state", {}).get("waiting"):
                return cs["state"]["waiting"], status
        return None

    waiting, status = wait_for(waiting_reason, timeout=60, what="the bad container to be waiting")
    assert waiting["reason"] == "ImagePullBackOff"
    assert bad in waiting["message"]
    ready = kubectl.run("wait", "pod/p", "-n", namespace, "--for=condition=Ready", "--timeout=5s", check=False)
    assert ready.returncode != 0
    status = kubectl.json("get", "pod", "p", "-n", namespace)["status"]
    assert status["phase"] == "Pending"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"


def test_an_ordinary_pod_becomes_ready(kubectl, namespace):
    kubectl.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok"},
                   "spec": {"containers": [restricted_container("c", "registry.example/cache:1")]}}, "-n", namespace)
    ready = kubectl.run("wait", "pod/ok", "-n", namespace, "--for=condition=Ready", "--timeout=60s", check=False)
    assert ready.returncode == 0, ready.stderr


def test_openshift_flavour_serves_the_quota_and_route_apis(kubectl):
    state = Path(kubectl.env["KUBECONFIG"]).parents[3] / "state.env"
    flavour = re.search(r"^FLAVOUR=(\w+)", state.read_text(), re.M).group(1) if state.exists() else "kubernetes"
    groups = kubectl.run("api-versions").stdout.split()
    if flavour != "openshift":
        assert "quota.openshift.io/v1" not in groups
        pytest.skip("cluster runs the kubernetes flavour; CLUSTER_FLAVOUR=openshift adds the OpenShift APIs")
    assert {"quota.openshift.io/v1", "route.openshift.io/v1"} <= set(groups)
    crq = {"apiVersion": "quota.openshift.io/v1", "kind": "ClusterResourceQuota",
           "metadata": {"name": "e2e-crq"},
           "spec": {"selector": {"labels": {"matchLabels": {"team": "e2e"}}}, "quota": {"hard": {"pods": "10"}}}}
    kubectl.apply(crq)
    try:
        kubectl.run("patch", "clusterresourcequota", "e2e-crq", "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"total": {"hard": {"pods": "10"}, "used": {"pods": "3"}}}}))
        got = kubectl.json("get", "clusterresourcequota", "e2e-crq")
        assert got["status"]["total"]["used"] == {"pods": "3"}
    finally:
        kubectl.run("delete", "clusterresourcequota", "e2e-crq", check=False)
