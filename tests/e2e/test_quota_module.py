# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""image_puller_quota against the real local cluster: real ResourceQuota and
LimitRange admission, and proof that the module predicts exactly what admission
then does to the DaemonSet's pods."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quantity import parse_quantity
from support import wait_for

pytestmark = pytest.mark.cluster

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
PLAYBOOK = """
- name: Run image_puller_quota once
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check the DaemonSet against the quotas
      kip.image_puller.image_puller_quota:
        definition: "{{ definition }}"
        fail_on_insufficient: "{{ fail_on_insufficient }}"
        skip_unchanged: "{{ skip_unchanged | default(false) }}"
      register: __out
      ignore_errors: true
    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ __out | to_json }}"
        dest: "{{ out_file }}"
        mode: "0600"
      check_mode: false
"""
# What the DaemonSet controller tolerates by itself, and taints that never keep pods away.
AUTO_TOLERATED = {"node.kubernetes.io/unschedulable", "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                  "node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure", "node.kubernetes.io/pid-pressure"}
MEMORY_LIMIT_MI = 16


def container(name: str) -> dict:
    return {
        "name": name,
        "image": f"registry.example/{name}:1",
        "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}, "limits": {"cpu": "20m", "memory": f"{MEMORY_LIMIT_MI}Mi"}},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }


def daemonset(namespace: str, images: int = 3, name: str = "kip") -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container(f"img{i}") for i in range(images)]}}}}


@pytest.fixture()
def ns(kubectl):
    name = f"e2e-quota-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def eligible(kubectl) -> int:
    """Nodes a DaemonSet without tolerations runs on, counted independently of the module."""
    count = 0
    for node in kubectl.json("get", "nodes")["items"]:
        taints = node["spec"].get("taints") or []
        if all(t["key"] in AUTO_TOLERATED or t["effect"] == "PreferNoSchedule" for t in taints):
            count += 1
    return count


@pytest.fixture()
def run_module(cluster_env, tmp_path):
    def run(definition: dict, *, fail_on_insufficient: bool = True, check: bool = False, skip_unchanged: bool = False) -> dict:
        playbook = tmp_path / "quota.yml"
        playbook.write_text(PLAYBOOK)
        out_file = tmp_path / f"out-{uuid.uuid4().hex[:6]}.json"
        extra = tmp_path / "vars.json"
        extra.write_text(json.dumps({"definition": definition, "fail_on_insufficient": fail_on_insufficient, "out_file": str(out_file),
                                     "skip_unchanged": skip_unchanged}))
        command = [str(ANSIBLE_PLAYBOOK), str(playbook), "-e", f"@{extra}"] + (["--check"] if check else [])
        proc = subprocess.run(command, env=cluster_env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and out_file.exists(), f"ansible-playbook failed:\n{proc.stdout}\n{proc.stderr}"
        return json.loads(out_file.read_text())
    return run


def create_quota(kubectl, namespace: str, name: str, hard: dict, scopes: list | None = None) -> None:
    spec: dict = {"hard": hard}
    if scopes:
        spec["scopes"] = scopes
    kubectl.apply({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": spec}, "-n", namespace)
    wait_for(lambda: kubectl.json("get", "resourcequota", name, "-n", namespace).get("status", {}).get("used") is not None,
             timeout=30, what=f"the quota controller to compute ResourceQuota {name}")


def refusals(kubectl, namespace: str) -> list[str]:
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector", "reason=FailedCreate")["items"]
    return [e.get("message", "") for e in events]


def admission_outcome(kubectl, namespace: str, definition: dict, expected_pods: int) -> list[str]:
    """Apply the DaemonSet for real; return the FailedCreate messages (empty when every pod was admitted)."""
    kubectl.apply(definition)

    def settled():
        status = kubectl.json("get", "ds", definition["metadata"]["name"], "-n", namespace).get("status", {})
        if refusals(kubectl, namespace):
            return True
        return status.get("desiredNumberScheduled") == expected_pods and status.get("currentNumberScheduled") == expected_pods

    wait_for(settled, timeout=90, what="the DaemonSet controller to create or be refused its pods")
    return refusals(kubectl, namespace)


def pods_the_prediction_admits(predicted: dict) -> int:
    """How many pods admission should take, from the module's own rows: every pod when all fit, none when a
    LimitRange or an unset tracked value refuses each pod, else what the scarcest quota resource holds."""
    admitted = predicted["eligible_nodes"]
    for row in predicted["rows"]:
        if row["fits"]:
            continue
        if row["kind"] == "LimitRange" or row["needed"] == "not set":
            return 0
        per_pod = parse_quantity(predicted["footprint"][row["resource"]])
        admitted = min(admitted, int(parse_quantity(row["available"]) // per_pod))
    return admitted


def scheduled(kubectl, namespace: str, name: str) -> int:
    return kubectl.json("get", "ds", name, "-n", namespace).get("status", {}).get("currentNumberScheduled", 0)


def test_a_quota_too_small_fails_naming_the_quota_resource_needed_and_available(kubectl, ns, eligible, run_module):
    needed = 3 * MEMORY_LIMIT_MI * eligible
    create_quota(kubectl, ns, "compute", {"limits.memory": f"{needed - 1}Mi"})
    out = run_module(daemonset(ns))
    assert out["failed"] is True and out["changed"] is False
    assert out["msg"] == (
        f'image_puller_quota: DaemonSet "kip" does not fit in namespace {ns}: {MEMORY_LIMIT_MI}Mi x 3 containers x {eligible} nodes = '
        f'{needed}Mi limits.memory needed, {needed - 1}Mi available in ResourceQuota "compute" (namespace {ns}): short by 1Mi')
    assert {"quota": "compute", "kind": "ResourceQuota", "resource": "limits.memory", "needed": f"{needed}Mi",
            "available": f"{needed - 1}Mi", "shortfall": "1Mi", "fits": False} in out["rows"]
    assert kubectl.run("get", "ds", "kip", "-n", ns, check=False).returncode != 0, "the module must not create anything"


def test_enough_quota_fits_in_check_mode_and_writes_nothing(kubectl, ns, eligible, run_module):
    create_quota(kubectl, ns, "compute", {"limits.memory": "1Gi", "pods": str(eligible), "count/daemonsets.apps": "1"})
    out = run_module(daemonset(ns), check=True)
    assert out.get("failed") is not True, out.get("msg")
    assert (out["fits"], out["changed"], out["eligible_nodes"]) == (True, False, eligible)
    assert out["nodes"]["total"] >= eligible
    assert kubectl.run("get", "ds", "kip", "-n", ns, check=False).returncode != 0


def test_a_limit_range_max_below_the_container_limit_fails_before_anything_is_applied(kubectl, ns, run_module):
    kubectl.apply({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "small"},
                   "spec": {"limits": [{"type": "Container", "max": {"memory": "10Mi"}}]}}, "-n", ns)
    out = run_module(daemonset(ns))
    assert out["failed"] is True
    assert f'LimitRange "small" (namespace {ns}): container "img0" memory limit 16Mi is above the Container max 10Mi' in out["msg"]


def test_without_the_openshift_api_cluster_quotas_are_skipped_and_said_so(kubectl, ns, run_module):
    groups = kubectl.run("api-versions").stdout.split()
    out = run_module(daemonset(ns), fail_on_insufficient=False)
    if "quota.openshift.io/v1" in groups:
        assert "ClusterResourceQuota API not present: skipped" not in out["notes"]
    else:
        assert "ClusterResourceQuota API not present: skipped" in out["notes"]


@pytest.mark.parametrize(
    ("setup", "fits"),
    [
        pytest.param("exact", True, id="exactly enough limits.memory is admitted as predicted"),
        pytest.param("short", False, id="one Mi too little limits.memory is refused as predicted"),
        pytest.param("pods-short", False, id="one pod too few in a NotBestEffort quota is refused as predicted"),
        pytest.param("besteffort-zero", True, id="a BestEffort quota of zero pods does not touch these pods, as predicted"),
        pytest.param("limitrange-max", False, id="a LimitRange max below the container limit is refused as predicted"),
        pytest.param("cpu-limit-untracked", False, id="a quota on limits.cpu refuses pods whose containers set no cpu limit, as predicted"),
    ],
)
def test_admission_agrees_with_the_prediction(kubectl, ns, eligible, run_module, setup, fits):
    definition = daemonset(ns)
    needed = 3 * MEMORY_LIMIT_MI * eligible
    if setup == "exact":
        create_quota(kubectl, ns, "compute", {"limits.memory": f"{needed}Mi"})
    elif setup == "short":
        create_quota(kubectl, ns, "compute", {"limits.memory": f"{needed - 1}Mi"})
    elif setup == "pods-short":
        create_quota(kubectl, ns, "pods", {"pods": str(eligible - 1)}, scopes=["NotBestEffort"])
    elif setup == "besteffort-zero":
        create_quota(kubectl, ns, "besteffort", {"pods": "0"}, scopes=["BestEffort"])
    elif setup == "limitrange-max":
        kubectl.apply({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "small"},
                       "spec": {"limits": [{"type": "Container", "max": {"memory": "10Mi"}}]}}, "-n", ns)
    elif setup == "cpu-limit-untracked":
        for c in definition["spec"]["template"]["spec"]["containers"]:
            del c["resources"]["limits"]["cpu"]
        create_quota(kubectl, ns, "cpu", {"limits.cpu": "10"})
    predicted = run_module(definition, fail_on_insufficient=False)
    assert predicted["fits"] is fits, predicted["messages"]
    admits = pods_the_prediction_admits(predicted)
    assert (admits == eligible) is fits
    refused = admission_outcome(kubectl, ns, definition, eligible)
    assert (not refused) is fits, refused
    if not fits:
        assert any(re.search(r"exceeded quota|forbidden|must specify", m) for m in refused), refused
    # not only refused or not: admission takes exactly the pods the module's arithmetic leaves room for
    wait_for(lambda: scheduled(kubectl, ns, "kip") == admits, timeout=30, what=f"{admits} admitted pods, as predicted")
    assert len(kubectl.json("get", "pods", "-n", ns)["items"]) == admits


def test_an_update_in_place_still_fits_the_quota_it_already_holds(kubectl, ns, eligible, run_module):
    needed = 3 * MEMORY_LIMIT_MI * eligible
    create_quota(kubectl, ns, "compute", {"limits.memory": f"{needed}Mi", "count/daemonsets.apps": "1", "pods": str(eligible)})
    definition = daemonset(ns)
    assert not admission_outcome(kubectl, ns, definition, eligible)
    wait_for(lambda: kubectl.json("get", "resourcequota", "compute", "-n", ns)["status"]["used"].get("limits.memory") == f"{needed}Mi",
             timeout=30, what="the quota to count the DaemonSet's pods")
    again = run_module(definition)
    assert again.get("failed") is not True, again.get("msg")
    assert again["fits"] is True and again["existing"] == {"pods": eligible}
    assert any(f"less {needed}Mi already held by the {eligible} pods" in m for m in again["messages"])
    grown = run_module(daemonset(ns, images=4), fail_on_insufficient=False)
    row = next(r for r in grown["rows"] if r["resource"] == "limits.memory")
    assert (row["needed"], row["available"], row["fits"]) == (f"{MEMORY_LIMIT_MI * eligible}Mi", "0Mi", False)


def test_pods_of_two_templates_each_hold_what_their_own_template_asks(kubectl, ns, eligible, run_module):
    """Half-way through an update (OnDelete, one pod replaced) the pods run two templates. The pre-flight counts them
    from the pod Table by revision, reading one pod of each in full: what they hold must be each template's own."""
    if eligible < 2:
        pytest.skip("needs two eligible nodes: one pod of each template")
    create_quota(kubectl, ns, "compute", {"limits.memory": "10Gi"})
    old, new = daemonset(ns), daemonset(ns, images=4)
    for definition in (old, new):
        definition["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert not admission_outcome(kubectl, ns, old, eligible)
    kubectl.apply(new)
    first = kubectl.json("get", "pods", "-n", ns, "-l", "app=kip")["items"][0]["metadata"]["name"]
    kubectl.run("delete", "pod", first, "-n", ns)

    def containers_per_pod():
        pods = kubectl.json("get", "pods", "-n", ns, "-l", "app=kip")["items"]
        return sorted(len(p["spec"]["containers"]) for p in pods if not p["metadata"].get("deletionTimestamp"))
    wait_for(lambda: containers_per_pod() == [3] * (eligible - 1) + [4], timeout=60, what="one pod of the new template, the others old")

    held = MEMORY_LIMIT_MI * (3 * (eligible - 1) + 4)
    out = run_module(new)
    assert out["existing"] == {"pods": eligible}
    assert any(f"less {held}Mi already held by the {eligible} pods" in m for m in out["messages"]), out["messages"]


def test_a_cluster_resource_quota_selecting_the_namespace_by_label_is_checked(kubectl, ns, eligible, run_module):
    if "quota.openshift.io/v1" not in kubectl.run("api-versions").stdout.split():
        pytest.skip("cluster runs the kubernetes flavour; CLUSTER_FLAVOUR=openshift adds ClusterResourceQuota")
    name = f"e2e-quota-{uuid.uuid4().hex[:6]}"
    kubectl.run("label", "namespace", ns, f"e2e-quota={name}")
    needed = 3 * MEMORY_LIMIT_MI * eligible
    kubectl.apply({"apiVersion": "quota.openshift.io/v1", "kind": "ClusterResourceQuota", "metadata": {"name": name},
                   "spec": {"selector": {"labels": {"matchLabels": {"e2e-quota": name}}}, "quota": {"hard": {"limits.memory": f"{needed}Mi"}}}})
    try:
        kubectl.run("patch", "clusterresourcequota", name, "--subresource=status", "--type=merge", "-p",
                    json.dumps({"status": {"total": {"hard": {"limits.memory": f"{needed}Mi"}, "used": {"limits.memory": "1Mi"}}}}))
        out = run_module(daemonset(ns))
        assert out["failed"] is True
        assert (f'{needed}Mi limits.memory needed, {needed - 1}Mi available in ClusterResourceQuota "{name}" '
                f'(selecting namespace {ns}): short by 1Mi') in out["msg"]
        kubectl.run("label", "namespace", ns, "e2e-quota-")
        unselected = run_module(daemonset(ns))
        assert unselected.get("failed") is not True and unselected["fits"] is True
    finally:
        kubectl.run("delete", "clusterresourcequota", name, check=False)


def test_an_api_removed_since_discovery_was_cached_is_skipped_not_an_error(kubectl, ns, run_module):
    """kubernetes.core caches discovery on disk per connection: a cluster that lost the OpenShift quota API at the
    same address still seems to serve it. The list then answers 404, which must mean 'not present'."""
    crd = "clusterresourcequotas.quota.openshift.io"
    if "quota.openshift.io/v1" not in kubectl.run("api-versions").stdout.split():
        pytest.skip("cluster runs the kubernetes flavour; CLUSTER_FLAVOUR=openshift adds ClusterResourceQuota")
    saved = kubectl.json("get", "crd", crd)
    first = run_module(daemonset(ns))
    assert first.get("failed") is not True and "ClusterResourceQuota API not present: skipped" not in first["notes"]
    kubectl.run("delete", "crd", crd, "--wait=true")
    try:
        wait_for(lambda: "quota.openshift.io/v1" not in kubectl.run("api-versions").stdout.split(),
                 timeout=30, what="the quota.openshift.io API to go")
        stale = run_module(daemonset(ns))
        assert stale.get("failed") is not True, stale.get("msg")
        assert "ClusterResourceQuota API not present: skipped" in stale["notes"]
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            saved["metadata"].pop(key, None)
        saved.pop("status", None)
        kubectl.apply(saved)
        kubectl.run("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd}")


def test_skip_unchanged_reads_nothing_more_when_the_pod_template_stays_and_checks_a_change(kubectl, ns, eligible, run_module):
    definition = daemonset(ns)
    fresh = run_module(definition, skip_unchanged=True)
    assert fresh["unchanged"] is False and fresh["eligible_nodes"] == eligible, "no DaemonSet yet: the full check"
    kubectl.apply(definition, "--server-side", "--field-manager=kip.image_puller")
    wait_for(lambda: scheduled(kubectl, ns, "kip") == eligible, timeout=60, what="the DaemonSet's pods")
    same = run_module(definition, skip_unchanged=True)
    assert (same["unchanged"], same["fits"], same["rows"], same["eligible_nodes"]) == (True, True, [], eligible)
    changed = run_module(daemonset(ns, images=4), skip_unchanged=True)
    assert changed["unchanged"] is False and changed["footprint"], "a new pod template is checked in full"
