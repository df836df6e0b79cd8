# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""kip.image_puller.image_puller_daemonset run for real, through ansible-playbook, against the local cluster.

The connection comes only from K8S_AUTH_KUBECONFIG (KUBECONFIG is removed), the
way AWX's Kubernetes credential hands it over.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from support import wait_for

pytestmark = pytest.mark.cluster

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
NAME = "puller"


def container(name: str, image: str) -> dict:
    """A container PodSecurity `restricted` admits, with requests and limits (quota-ready)."""
    return {
        "name": name,
        "image": image,
        "command": ["/sleep", "infinity"],
        "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}, "limits": {"cpu": "20m", "memory": "16Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def daemonset(namespace: str, *images: str, labels: dict | None = None) -> dict:
    labels = labels or {"app.kubernetes.io/name": "kubernetes-image-puller", "app.kubernetes.io/instance": NAME}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME, "namespace": namespace, "labels": {**labels, "app.kubernetes.io/managed-by": "kip.image_puller"}},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [container(f"image-{i}", image) for i, image in enumerate(images or ("registry.example/java:17",))],
                },
            },
        },
    }


class Run:
    """One ansible-playbook run of one module task: its result and the play's outcome."""

    def __init__(self, proc: subprocess.CompletedProcess):
        self.proc = proc
        try:
            report = json.loads(proc.stdout)
        except ValueError as exc:
            raise AssertionError(f"ansible-playbook did not print JSON (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from exc
        self.result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    def __getitem__(self, key):
        return self.result[key]


@pytest.fixture(name="module")
def fixture_module(cluster_env, tmp_path):
    env = {key: value for key, value in cluster_env.items() if key != "KUBECONFIG"}
    env.update(ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")

    def run(*flags: str, **params) -> Run:
        playbook = tmp_path / "playbook.yml"
        playbook.write_text(yaml.safe_dump([{
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"name": "image_puller_daemonset", "kip.image_puller.image_puller_daemonset": params}],
        }]))
        proc = subprocess.run(
            [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
             *flags, str(playbook)],
            env=env, capture_output=True, text=True, check=False, timeout=600,
        )
        return Run(proc)

    return run


@pytest.fixture(name="plain_nodes", scope="module")
def fixture_plain_nodes(kubectl) -> list:
    """The nodes without taints, where the test DaemonSet (which tolerates none) runs: sorted names."""
    return sorted(node["metadata"]["name"] for node in kubectl.json("get", "nodes")["items"] if not node["spec"].get("taints"))


def pods_of(kubectl, namespace: str) -> list:
    return kubectl.json("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={NAME}")["items"]


def test_create_reports_changed_and_a_second_apply_does_not(module, restricted, kubectl, plain_nodes):
    first = module(definition=daemonset(restricted, "registry.example/java:17", "registry.example/node:20"))
    assert not first.failed, first["msg"]
    assert first["changed"] is True and first["recreated"] is False
    summary = first["summary"]
    assert (summary["desired"], summary["ready"], summary["updated"], summary["available"]) == (len(plain_nodes),) * 4
    assert summary["images"] == [{"container": "image-0", "image": "registry.example/java:17"},
                                 {"container": "image-1", "image": "registry.example/node:20"}]
    assert [node["node"] for node in summary["nodes"]] == plain_nodes
    assert all(node["ready"] and node["updated"] for node in summary["nodes"])
    assert first["problems"] == []
    assert "managedFields" not in first["result"]["metadata"]

    live = kubectl.json("get", "daemonset", NAME, "-n", restricted, "--show-managed-fields")
    assert {entry["manager"] for entry in live["metadata"]["managedFields"]} >= {"kip.image_puller"}

    second = module(definition=daemonset(restricted, "registry.example/java:17", "registry.example/node:20"))
    assert not second.failed, second["msg"]
    assert second["changed"] is False
    assert kubectl.json("get", "daemonset", NAME, "-n", restricted)["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]


def test_without_waiting_a_finished_rollout_is_reported_node_by_node(module, restricted, plain_nodes):
    definition = daemonset(restricted, "registry.example/java:17")
    assert not module(definition=definition).failed
    again = module(definition=definition, wait=False)
    assert not again.failed, again["msg"]
    assert [(node["node"], node["ready"], node["updated"]) for node in again["summary"]["nodes"]] == [(n, True, True) for n in plain_nodes]
    assert again["problems"] == []

    brief = module(definition=definition, wait=False, summary_nodes=False)
    assert not brief.failed, brief["msg"]
    assert brief["summary"]["nodes"] == [], "summary_nodes=false leaves out the pods by node"
    assert {k: v for k, v in brief["summary"].items() if k != "nodes"} == {k: v for k, v in again["summary"].items() if k != "nodes"}
    assert brief["summary_lines"] == again["summary_lines"]


def test_check_mode_reports_the_change_and_the_diff_but_leaves_the_cluster_alone(module, restricted, kubectl, plain_nodes):
    assert not module(definition=daemonset(restricted, "registry.example/java:17")).failed
    before = kubectl.json("get", "daemonset", NAME, "-n", restricted)

    checked = module("--check", "--diff", definition=daemonset(restricted, "registry.example/java:21"))
    assert not checked.failed, checked["msg"]
    assert checked["changed"] is True
    diff = checked["diff"]
    assert diff["before"]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/java:17"
    assert diff["after"]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/java:21"
    after = kubectl.json("get", "daemonset", NAME, "-n", restricted)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/java:17"

    real = module("--diff", definition=daemonset(restricted, "registry.example/java:21"))
    assert not real.failed, real["msg"]
    assert real["changed"] is True
    assert real["diff"]["after"]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/java:21"
    assert real["summary"]["updated"] == len(plain_nodes)
    images = {pod["spec"]["containers"][0]["image"] for pod in pods_of(kubectl, restricted) if not pod["metadata"].get("deletionTimestamp")}
    assert images == {"registry.example/java:21"}


def test_a_new_selector_recreates_the_daemonset_and_says_why(module, restricted, kubectl, plain_nodes):
    assert not module(definition=daemonset(restricted)).failed
    old_uid = kubectl.json("get", "daemonset", NAME, "-n", restricted)["metadata"]["uid"]

    labels = {"app.kubernetes.io/name": "kubernetes-image-puller", "app.kubernetes.io/instance": NAME, "tier": "cache"}
    checked = module("--check", definition=daemonset(restricted, labels=labels))
    assert checked["changed"] is True and checked["recreated"] is True
    assert kubectl.json("get", "daemonset", NAME, "-n", restricted)["metadata"]["uid"] == old_uid

    recreated = module(definition=daemonset(restricted, labels=labels))
    assert not recreated.failed, recreated["msg"]
    assert recreated["changed"] is True and recreated["recreated"] is True
    assert recreated["recreate_reason"].startswith("spec.selector is immutable and changes from")
    live = kubectl.json("get", "daemonset", NAME, "-n", restricted)
    assert live["metadata"]["uid"] != old_uid
    owners = {ref["uid"] for pod in pods_of(kubectl, restricted) for ref in pod["metadata"]["ownerReferences"]}
    assert owners == {live["metadata"]["uid"]}
    assert recreated["summary"]["ready"] == len(plain_nodes)


def test_an_image_that_cannot_be_pulled_fails_early_naming_image_node_and_reason(module, restricted, plain_nodes):
    started = time.monotonic()
    failed = module(definition=daemonset(restricted, "registry.example/java:17", "registry.example/app:pull-fails"), wait_timeout=240)
    assert failed.failed
    assert time.monotonic() - started < 180, "gave up on the hopeless pull before the timeout"
    assert "the rollout cannot finish" in failed["msg"]
    for node in plain_nodes:
        assert (f'image "registry.example/app:pull-fails" (container "image-1") on node "{node}": ImagePullBackOff'
                in failed["msg"]), failed["msg"]
    problems = failed["problems"]
    assert [p["node"] for p in problems] == plain_nodes
    assert {(p["image"], p["container"], p["reason"]) for p in problems} == {
        ("registry.example/app:pull-fails", "image-1", "ImagePullBackOff")}
    assert failed["changed"] is True and failed["summary"]["desired"] == len(plain_nodes)


def test_going_back_to_the_previous_images_finishes_with_the_pods_that_kept_them(module, restricted, kubectl, plain_nodes):
    """The DaemonSet controller keeps pods whose template is current again (by revision hash, whatever their generation)."""
    good = daemonset(restricted, "registry.example/java:17")
    assert not module(definition=good).failed
    broken = module(definition=daemonset(restricted, "registry.example/java:17", "registry.example/app:pull-fails"), wait=False)
    assert not broken.failed, broken["msg"]
    assert broken["summary_lines"][0].startswith(f"DaemonSet {restricted}/{NAME}: rollout under way, not waited for: "), broken["summary_lines"]
    wait_for(lambda: [pod for pod in pods_of(kubectl, restricted) if len(pod["spec"]["containers"]) == 2], timeout=60, interval=1,
             what="the rolling update to put a pod with the image that cannot be pulled on a node")

    back = module(definition=good, wait_timeout=120)
    assert not back.failed, back["msg"]
    assert [(node["node"], node["ready"], node["updated"]) for node in back["summary"]["nodes"]] == [(n, True, True) for n in plain_nodes]
    generations = sorted(pod["metadata"]["labels"]["pod-template-generation"] for pod in pods_of(kubectl, restricted)
                         if not pod["metadata"].get("deletionTimestamp"))
    assert "1" in generations and "3" in generations, f"pods of the first generation were kept, one made anew: {generations}"


def test_a_timeout_fails_with_the_problems_found(module, restricted):
    failed = module(definition=daemonset(restricted, "registry.example/app:pull-fails"), wait_timeout=15)
    assert failed.failed
    assert "the rollout did not finish within 15" in failed["msg"] or "the rollout cannot finish" in failed["msg"]
    assert "ImagePullBackOff" in failed["msg"] and 'on node "' in failed["msg"]


def test_pods_that_fit_no_node_are_reported_unschedulable_with_their_node(module, restricted, plain_nodes):
    definition = daemonset(restricted)
    definition["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "10m", "memory": "64Ti"},
                                                                            "limits": {"cpu": "20m", "memory": "64Ti"}}
    failed = module(definition=definition, wait_timeout=15)
    assert failed.failed
    assert "the rollout did not finish within 15s" in failed["msg"]
    assert {(p["node"], p["reason"]) for p in failed["problems"]} == {(node, "Unschedulable") for node in plain_nodes}
    assert all("Insufficient memory" in p["message"] for p in failed["problems"]), failed["problems"]
    for node in plain_nodes:
        assert f'on node "{node}": Unschedulable: 0/' in failed["msg"], failed["msg"]


def test_a_quota_refusal_of_pods_is_reported_from_the_controllers_events(module, restricted, kubectl):
    kubectl.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "one-pod", "namespace": restricted},
                   "spec": {"hard": {"pods": "1"}}})
    wait_for(lambda: kubectl.json("get", "resourcequota", "one-pod", "-n", restricted).get("status", {}).get("hard"),
             timeout=30, what="the quota controller to fill in the quota's status")
    failed = module(definition=daemonset(restricted), wait_timeout=20)
    assert failed.failed
    refusals = [p for p in failed["problems"] if p["reason"] == "FailedCreate"]
    assert refusals and all(p["node"] is None for p in refusals)
    assert "exceeded quota: one-pod" in refusals[0]["message"]
    assert "the DaemonSet controller: FailedCreate: Error creating: pods " in failed["msg"], failed["msg"]


def test_absent_deletes_the_daemonset_and_waits_for_its_pods(module, restricted, kubectl, plain_nodes):
    assert not module(definition=daemonset(restricted)).failed
    assert len(pods_of(kubectl, restricted)) == len(plain_nodes)

    checked = module("--check", state="absent", definition=daemonset(restricted))
    assert checked["changed"] is True
    assert kubectl.run("get", "daemonset", NAME, "-n", restricted, check=False).returncode == 0

    removed = module(state="absent", definition={"metadata": {"name": NAME, "namespace": restricted}})
    assert not removed.failed, removed["msg"]
    assert removed["changed"] is True
    assert kubectl.run("get", "daemonset", NAME, "-n", restricted, check=False).returncode != 0
    assert pods_of(kubectl, restricted) == []

    again = module(state="absent", definition={"metadata": {"name": NAME, "namespace": restricted}})
    assert not again.failed and again["changed"] is False


def test_a_missing_namespace_is_a_clear_error(module):
    failed = module(definition=daemonset("e2e-ds-does-not-exist"))
    assert failed.failed
    assert "DaemonSet e2e-ds-does-not-exist/puller: could not apply it" in failed["msg"]
    assert 'namespaces "e2e-ds-does-not-exist" not found' in failed["msg"]


OURS = {"app.kubernetes.io/managed-by": "kip.image_puller"}
PSA = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}


def whole_deploy(namespace: str, *images: str) -> dict:
    """The options of a deploy in one run: namespace, a ConfigMap, a ServiceAccount, the quota check, the DaemonSet."""
    return {
        "definition": daemonset(namespace, *images),
        "namespace_definition": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {**OURS, **PSA}}},
        "objects": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, "labels": OURS}, "data": {"IMAGES": ";".join(images)}},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "labels": OURS}, "automountServiceAccountToken": False},
        ],
        "quota_check": True,
    }


@pytest.fixture(name="fresh_namespace")
def fixture_fresh_namespace(kubectl):
    """A namespace name that does not exist yet; deleted afterwards if a test created it."""
    name = f"e2e-one-{time.time_ns() % 10**9}"
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def test_a_whole_deploy_in_one_run_creates_everything_then_changes_nothing(module, fresh_namespace, kubectl, plain_nodes):
    checked = module("--check", "--diff", **whole_deploy(fresh_namespace, "registry.example/java:17"))
    assert not checked.failed, checked["msg"]
    assert checked["changed"] is True
    assert [(o["kind"], o["action"]) for o in checked["objects"]] == [
        ("Namespace", "created"), ("ConfigMap", "would be created"), ("ServiceAccount", "would be created")]
    assert kubectl.run("get", "namespace", fresh_namespace, check=False).returncode != 0, "check mode created the namespace"

    first = module(**whole_deploy(fresh_namespace, "registry.example/java:17"))
    assert not first.failed, first["msg"]
    assert first["changed"] is True and first["quota"]["fits"] is True and first["quota"]["unchanged"] is False
    assert [(o["kind"], o["action"], o["changed"]) for o in first["objects"]] == [
        ("Namespace", "created", True), ("ConfigMap", "created", True), ("ServiceAccount", "created", True)]
    assert kubectl.json("get", "namespace", fresh_namespace)["metadata"]["labels"].items() >= {**OURS, **PSA}.items()
    assert kubectl.json("get", "configmap", NAME, "-n", fresh_namespace)["data"] == {"IMAGES": "registry.example/java:17"}
    assert first["summary"]["ready"] == len(plain_nodes)

    again = module("--diff", **whole_deploy(fresh_namespace, "registry.example/java:17"))
    assert not again.failed, again["msg"]
    assert again["changed"] is False
    assert [o["action"] for o in again["objects"]] == ["unchanged"] * 3
    assert again["quota"]["unchanged"] is True, "an unchanged pod template skips the quota reads"
    assert again["summary"]["nodes"] == [], "nothing changed and the status says done: no pod was read"
    assert again["summary"]["ready"] == len(plain_nodes)
    assert [d["before"] == d["after"] for d in again["diff"]] == [True] * 4
    assert [d["before_header"] for d in again["diff"]] == [
        f"Namespace/{fresh_namespace}", f"ConfigMap/{fresh_namespace}/{NAME}", f"ServiceAccount/{fresh_namespace}/{NAME}",
        f"DaemonSet {fresh_namespace}/{NAME}"]


def test_a_namespace_made_by_someone_else_only_gets_the_pod_security_labels(module, namespace, kubectl):
    deployed = module(**whole_deploy(namespace, "registry.example/java:17"))
    assert not deployed.failed, deployed["msg"]
    assert deployed["objects"][0]["action"] == "labelled (pod security only)"
    labels = kubectl.json("get", "namespace", namespace)["metadata"]["labels"]
    assert labels.items() >= PSA.items()
    assert "app.kubernetes.io/managed-by" not in labels


def test_a_missing_namespace_that_may_not_be_created_fails_before_any_write(module, fresh_namespace, kubectl):
    refused = module(**whole_deploy(fresh_namespace, "registry.example/java:17"), create_namespace=False)
    assert refused.failed
    assert refused["msg"] == (f"namespace {fresh_namespace!r} does not exist and create_namespace is false: "
                              "create it first, or set create_namespace to true")
    assert kubectl.run("get", "namespace", fresh_namespace, check=False).returncode != 0


def test_a_quota_shortfall_stops_the_whole_deploy_before_any_write(module, namespace, kubectl):
    kubectl.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "tiny"}, "spec": {"hard": {"limits.memory": "1Mi"}}},
                  "-n", namespace)
    wait_for(lambda: kubectl.json("get", "resourcequota", "tiny", "-n", namespace).get("status", {}).get("used") is not None,
             timeout=30, what="the quota controller to count ResourceQuota tiny")
    refused = module(**whole_deploy(namespace, "registry.example/java:17"))
    assert refused.failed
    assert refused["quota"]["fits"] is False and refused["objects"] == []
    assert 'ResourceQuota "tiny"' in refused["msg"]
    for kind in ("configmap", "serviceaccount/" + NAME, "daemonset"):
        listed = kubectl.run("get", kind, "-n", namespace, "-o", "name", check=False).stdout
        assert NAME not in listed, f"{kind} was written despite the shortfall"


def test_restart_rolls_every_pod_and_says_so(module, restricted, kubectl):
    definition = daemonset(restricted, "registry.example/java:17")
    assert not module(definition=definition).failed
    before = {pod["metadata"]["uid"] for pod in pods_of(kubectl, restricted)}
    restarted = module(definition=definition, restart=True)
    assert not restarted.failed, restarted["msg"]
    assert restarted["changed"] is True and restarted["restarted"] is True
    after = {pod["metadata"]["uid"] for pod in pods_of(kubectl, restricted) if not pod["metadata"].get("deletionTimestamp")}
    assert after and not after & before, "every pod was replaced"
    template = kubectl.json("get", "daemonset", NAME, "-n", restricted)["spec"]["template"]["metadata"]
    assert "image-puller.kip/refreshed-at" in template["annotations"]
