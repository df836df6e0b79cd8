# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Taking over an upstream kubernetes-image-puller install (image_puller_adopt).

There is no upstream image or registry here, so the upstream install is staged as its Helm chart
(deploy/helm, default values) and its controller (utils/clusterutils.go getDaemonset) leave it:
the same names, labels, ConfigMap keys, selector and ownerReference, on the kwok nodes (which run
any image; the controller's code does not run). Cases: without image_puller_adopt the role stops
before any change, in check mode and for a removal too; with it, check mode changes nothing, then a run lands the
ConfigMap's settings in the role's DaemonSet, removes the controller and the upstream pods,
account and RBAC, while a pod watch shows every node kept a running puller pod throughout; a
second run changes nothing, and a run without image_puller_adopt stops again.
"""
from __future__ import annotations

import threading
import uuid

import pytest
import yaml
from kubernetes import client as k8s, config as k8s_config, watch as k8s_watch

from support import REPO, wait_for
from test_real_node import Playbook, ok

pytestmark = pytest.mark.cluster

IMAGE = yaml.safe_load((REPO / "roles" / "image_puller" / "defaults" / "main.yml").read_text(encoding="utf-8"))[
    "image_puller_puller_image"]
SELECTOR = {"test": "daemonset-test", "app.kubernetes.io/name": "image-puller"}
DS, CM, SA = "kubernetes-image-puller", "k8s-image-puller", "k8s-image-puller"
# The settings the role must take from the upstream ConfigMap (not the role's defaults).
DATA = {"IMAGES": "busybox=busybox:1.36;\nalpine=alpine:3.20;\n", "DAEMONSET_NAME": DS, "DAEMONSET_ANNOTATIONS": "{}",
        "CACHING_INTERVAL_HOURS": "3", "CACHING_MEMORY_REQUEST": "12Mi", "CACHING_MEMORY_LIMIT": "24Mi",
        "CACHING_CPU_REQUEST": ".05", "CACHING_CPU_LIMIT": ".2", "NODE_SELECTOR": "{}", "IMAGE_PULL_SECRETS": "",
        "AFFINITY": "{}", "TOLERATIONS": "[]", "KIP_IMAGE": IMAGE}


def stage_upstream(kubectl, namespace: str) -> None:
    """The objects `helm install` of deploy/helm and then its controller leave in the namespace."""
    role_rules = [{"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["create", "delete", "list", "watch", "get"]},
                  {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]
    for manifest in (
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": SA}, "rules": role_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": SA},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SA},
         "subjects": [{"kind": "ServiceAccount", "name": SA}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM}, "data": {**DATA, "NAMESPACE": namespace}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": DS, "labels": {"app": DS}},
         "spec": {"replicas": 1, "revisionHistoryLimit": 2, "selector": {"matchLabels": {"app": DS}},
                  "strategy": {"type": "Recreate"},
                  "template": {"metadata": {"labels": {"app": DS}}, "spec": {
                      "serviceAccountName": SA,
                      "containers": [{"name": DS, "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                      "env": [{"name": "DEPLOYMENT_NAME", "value": DS}],
                                      "envFrom": [{"configMapRef": {"name": CM}}]}]}}}},
    ):
        kubectl.apply(manifest, "-n", namespace)
    owner = kubectl.json("get", "deployment", DS, "-n", namespace)["metadata"]
    sleeper = {"command": ["/kip/sleep"], "args": ["720h"], "imagePullPolicy": "Always",
               "volumeMounts": [{"name": "kip", "mountPath": "/kip"}]}
    kubectl.apply({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {
        "name": DS, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": DS, "uid": owner["uid"]}]},
        "spec": {"selector": {"matchLabels": SELECTOR}, "template": {"metadata": {"labels": SELECTOR}, "spec": {
            "terminationGracePeriodSeconds": 1,
            "initContainers": [{"name": "copy-sleep", "image": IMAGE, "command": ["/bin/sh"],
                                "args": ["-c", "cp /bin/sleep /kip/sleep"], "volumeMounts": sleeper["volumeMounts"]}],
            "containers": [{"name": "busybox", "image": "busybox:1.36", **sleeper},
                           {"name": "alpine", "image": "alpine:3.20", **sleeper}],
            "volumes": [{"name": "kip", "emptyDir": {"sizeLimit": "50Mi"}}]}}}}, "-n", namespace)
    wait_for(lambda: ready_nodes(kubectl, namespace) and ready_nodes(kubectl, namespace) == eligible_nodes(kubectl),
             timeout=60, what="an upstream puller pod on every node")
    wait_for(lambda: kubectl.json("get", "deployment", DS, "-n", namespace)["status"].get("readyReplicas") == 1,
             timeout=60, what="the upstream controller's pod")


def eligible_nodes(kubectl) -> set[str]:
    """The nodes a DaemonSet without tolerations runs on: the untainted ones."""
    return {node["metadata"]["name"] for node in kubectl.json("get", "nodes")["items"] if not node["spec"].get("taints")}


def ready_nodes(kubectl, namespace: str) -> set[str]:
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", ",".join(f"{k}={v}" for k, v in SELECTOR.items()))["items"]
    return {pod["spec"]["nodeName"] for pod in pods if pod["status"].get("phase") == "Running"}


def snapshot(kubectl, namespace: str) -> dict[str, str]:
    """Every object in the namespace the role could touch, and the namespace itself: Kind/name -> resourceVersion."""
    kinds = "deployments,daemonsets,configmaps,serviceaccounts,roles,rolebindings,pods,networkpolicies,secrets"
    items = kubectl.json("get", kinds, "-n", namespace)["items"] + [kubectl.json("get", "namespace", namespace)]
    return {f"{item['kind']}/{item['metadata']['name']}": item["metadata"]["resourceVersion"] for item in items}


class PodWatch(threading.Thread):
    """Watches the namespace's pods; records each moment a node had no running puller pod."""

    def __init__(self, kubeconfig: str, namespace: str, nodes: set[str], puller_labels: list[dict]):
        super().__init__(daemon=True)
        self.api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=kubeconfig))
        self.namespace, self.nodes, self.puller_labels = namespace, nodes, puller_labels
        self.watch = k8s_watch.Watch()
        self.pods: dict[str, object] = {}
        self.gaps: list[str] = []
        self.events = 0
        self.stopped, self.error = False, None
        listed = self.api.list_namespaced_pod(namespace)
        self.pods = {pod.metadata.name: pod for pod in listed.items}
        self.resource_version = listed.metadata.resource_version
        self.check("start")

    def running(self, pod) -> bool:
        labels = pod.metadata.labels or {}
        return (any(all(labels.get(k) == v for k, v in want.items()) for want in self.puller_labels)
                and pod.status.phase == "Running" and not pod.metadata.deletion_timestamp)

    def check(self, event: str) -> None:
        covered = {pod.spec.node_name for pod in self.pods.values() if self.running(pod)}
        for node in sorted(self.nodes - covered):
            self.gaps.append(f"{node} had no running puller pod after {event}")

    def run(self) -> None:
        try:
            for event in self.watch.stream(self.api.list_namespaced_pod, self.namespace,
                                           resource_version=self.resource_version, timeout_seconds=600):
                pod = event["object"]
                self.events += 1
                if event["type"] == "DELETED":
                    self.pods.pop(pod.metadata.name, None)
                else:
                    self.pods[pod.metadata.name] = pod
                self.check(f"{event['type']} {pod.metadata.name}")
        except Exception as exc:  # pylint: disable=broad-exception-caught
            if not self.stopped:
                self.error = exc

    def stop(self) -> None:
        self.stopped = True
        self.watch.stop()


@pytest.fixture(name="playbook")
def fixture_playbook(cluster_env, tmp_path) -> Playbook:
    return Playbook(cluster_env, tmp_path)


@pytest.fixture(name="upstream")
def fixture_upstream(kubectl):
    """A namespace holding a staged upstream install (Helm shape); deleted afterwards."""
    name = f"e2e-adopt-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    wait_for(lambda: kubectl.run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             timeout=30, what=f"the default ServiceAccount of namespace {name}")
    stage_upstream(kubectl, name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def test_the_role_stops_before_any_change_when_an_upstream_install_is_there(playbook, kubectl, upstream):
    before = snapshot(kubectl, upstream)
    for check_mode in (False, True):
        run = playbook("deploy", namespace=upstream, images=["busybox:1.36"], check=check_mode)
        assert run.returncode != 0, run.stdout[-3000:]
        assert f"namespace {upstream} holds an upstream kubernetes-image-puller install: Deployment/{DS}, ConfigMap/{CM}, " \
               f"DaemonSet/{DS}" in run.stdout, run.stdout[-3000:]
        assert "image_puller_adopt: true" in run.stdout
    # the removal too: the upstream DaemonSet has the role's default DaemonSet name
    removal = playbook("remove", namespace=upstream)
    assert removal.returncode != 0 and f"namespace {upstream} holds an upstream kubernetes-image-puller install" in removal.stdout
    assert snapshot(kubectl, upstream) == before


def test_adopt_takes_over_the_settings_and_every_node_keeps_a_puller_pod(playbook, kubectl, kubeconfig, upstream):
    nodes = eligible_nodes(kubectl)
    assert ready_nodes(kubectl, upstream) == nodes
    # check mode with image_puller_adopt: says what it would take over, changes nothing
    before = snapshot(kubectl, upstream)
    checked = playbook("deploy", namespace=upstream, adopt=True, check=True)
    ok(checked)
    assert f"image_puller_adopt: taking over Deployment/{DS}, ConfigMap/{CM}, DaemonSet/{DS}" in checked.stdout
    assert snapshot(kubectl, upstream) == before
    watcher = PodWatch(kubeconfig, upstream, nodes, [SELECTOR, {"app.kubernetes.io/instance": DS}])
    watcher.start()
    try:
        adopted = playbook("deploy", namespace=upstream, adopt=True, wait_timeout=120)
    finally:
        watcher.stop()
        watcher.join(timeout=10)
    ok(adopted)
    assert f"image_puller_adopt: taking over Deployment/{DS}, ConfigMap/{CM}, DaemonSet/{DS}" in adopted.stdout
    assert watcher.error is None and watcher.events > 0 and watcher.gaps == [], (watcher.error, watcher.gaps[:5])

    # the settings of the upstream ConfigMap, in the role's DaemonSet
    daemonset = kubectl.json("get", "daemonset", DS, "-n", upstream)
    assert daemonset["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kip.image_puller"
    spec = daemonset["spec"]["template"]["spec"]
    assert [(c["name"], c["image"]) for c in spec["containers"]] == [("busybox", "busybox:1.36"), ("alpine", "alpine:3.20")]
    assert {c["args"][0] for c in spec["containers"]} == {"10800s"}
    assert {c["resources"]["requests"]["memory"] for c in spec["containers"]} == {"12Mi"}
    assert {c["resources"]["limits"]["memory"] for c in spec["containers"]} == {"24Mi"}
    assert daemonset["status"]["numberReady"] == len(nodes)

    # the upstream install is gone (controller, account and RBAC, its pods) but for its ConfigMap, marked as taken over
    left = set(snapshot(kubectl, upstream))
    for gone in (f"Deployment/{DS}", f"ServiceAccount/{SA}", f"Role/{SA}", f"RoleBinding/{SA}"):
        assert gone not in left
    configmap = kubectl.json("get", "configmap", CM, "-n", upstream)
    assert configmap["metadata"]["annotations"]["image-puller.kip/adopted-by"] == "kip.image_puller"
    assert kubectl.json("get", "pods", "-n", upstream, "-l", ",".join(f"{k}={v}" for k, v in SELECTOR.items()))["items"] == []
    assert kubectl.json("get", "pods", "-n", upstream, "-l", f"app={DS}")["items"] == []

    # a second run with image_puller_adopt: nothing left to take over, nothing changes
    before = snapshot(kubectl, upstream)
    again = playbook("deploy", namespace=upstream, adopt=True, wait_timeout=120)
    ok(again)
    assert "changed=0" in again.stdout, again.stdout[-3000:]
    assert "image_puller_adopt: nothing left to take over;" in again.stdout
    assert "settings from ConfigMap/k8s-image-puller (explicit image_puller_* variables win)" in again.stdout
    assert snapshot(kubectl, upstream) == before

    # without image_puller_adopt the taken-over ConfigMap still stops the role, before any change
    stopped = playbook("deploy", namespace=upstream, images=["busybox:1.36"])
    assert stopped.returncode != 0 and "that image_puller_adopt took over earlier" in stopped.stdout, stopped.stdout[-3000:]
    assert snapshot(kubectl, upstream) == before
