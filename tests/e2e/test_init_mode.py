# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""image_puller_mode init on the real node (real-node-0): init containers really pull, and exit.

Through the public playbooks, as a user runs them: the deploy caches every image through an init
container, the info module reports them cached per node with the digest the kubelet resolved, a
switch between the modes rolls the same DaemonSet, and an image that cannot be pulled fails the
deploy naming the image, the node and the kubelet's reason. The image GC in init mode is in
test_real_node.py's GC test.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

# node, fixture_namespace and fixture_playbook are the real-node tests' fixtures, imported to be used here
from test_real_node import (  # noqa: F401  pylint: disable=unused-import
    ANSIBLE_PLAYBOOK,
    NODE,
    PULLER_UID,
    fixture_namespace,
    fixture_playbook,
    node,
    ok,
    on_real_node,
    puller_pod,
)

pytestmark = [pytest.mark.cluster, pytest.mark.real_node]


def init_statuses(pod: dict) -> dict[str, dict]:
    return {status["name"]: status for status in pod["status"].get("initContainerStatuses") or []}


def info(playbook, tmp_path, namespace: str) -> dict:
    """image_puller_info's result, through a playbook as a user runs it."""
    task = {"kip.image_puller.image_puller_info": {"name": "cache", "namespace": namespace}, "register": "info"}
    save = {"ansible.builtin.copy": {"content": "{{ info | to_json }}", "dest": str(tmp_path / "info.json"), "mode": "0600"}}
    (tmp_path / "info.yml").write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task, save]}]))
    ok(subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
                       str(tmp_path / "info.yml")], env=playbook.env, capture_output=True, text=True, check=False, timeout=300))
    return json.loads((tmp_path / "info.json").read_text(encoding="utf-8"))


def test_init_mode_caches_every_image_a_refresh_re_pulls_and_a_switch_rolls_the_same_daemonset(node, kubectl, playbook, namespace, tmp_path):
    moving = f"{node.registry}/kip-test/moving:current"
    first = node.move_tag("kip-test/moving", "a", "current")
    images = [{"name": "no-shell", "image": f"{node.registry}/kip-test/no-shell:1"}, {"name": "moving", "image": moving}]
    served = {"no-shell": node.registry_digest("kip-test/no-shell", "1"), "moving": first}
    ok(playbook("deploy", **on_real_node(node, namespace, images)))
    uid = kubectl.json("get", "daemonset", "cache", "-n", namespace)["metadata"]["uid"]
    daemon_pod = puller_pod(kubectl, namespace)["metadata"]["name"]

    # daemon -> init: the same DaemonSet rolls its pod; the pre-flight shows what each mode needs on this node
    run = playbook("deploy", **on_real_node(node, namespace, images, mode="init"))
    ok(run)
    per_pod = dict(re.findall(r"image_puller_mode (\w+) (?:needs|would need) ([^;]*) per pod", run.stdout))
    assert "limits.memory 20Mi," in per_pod.get("init", ""), run.stdout[-4000:]
    assert "limits.memory 40Mi," in per_pod.get("daemon", ""), run.stdout[-4000:]
    assert kubectl.json("get", "daemonset", "cache", "-n", namespace)["metadata"]["uid"] == uid, "the DaemonSet was re-created"
    pod = puller_pod(kubectl, namespace)
    assert pod["metadata"]["name"] != daemon_pod
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
    # every image was pulled by its init container, which ran the copied sleep as the non-root UID and exited 0
    statuses = init_statuses(pod)
    for item in images:
        assert statuses[item["name"]]["state"]["terminated"]["exitCode"] == 0, statuses[item["name"]]
        assert statuses[item["name"]]["imageID"].endswith("@" + served[item["name"]])
        assert served[item["name"]] in node.stored_digests(item["image"])
    # what runs on the node is the one keeper: the puller image's own sleep for the caching interval
    processes = node.processes(pod["metadata"]["name"])
    assert [(p["name"], p["cmdline"], p["uids"]) for p in processes] == [("keep-pod", ["/bin/sleep", "3600s"], {PULLER_UID})]

    # image_puller_info: each image cached on the node, with the digest the kubelet resolved
    result = info(playbook, tmp_path, namespace)
    assert result["summary"]["complete"] and result["summary"]["cached_everywhere"] == [item["image"] for item in images]
    entry = next(entry for entry in result["nodes"] if entry["node"] == NODE)
    assert [(image["container"], image["state"], image["cached"]) for image in entry["images"]] == [
        ("no-shell", "completed", True), ("moving", "completed", True)]
    assert [image["image_id"].rsplit("@", 1)[1] for image in entry["images"]] == [served["no-shell"], first]

    # init containers run once per pod: the refresh (a rolling restart) resolves a moved tag again
    moved = node.move_tag("kip-test/moving", "b", "current")
    assert moved != first
    refresh = playbook("deploy", **on_real_node(node, namespace, images, mode="init"), refresh=True)
    ok(refresh)
    assert "pods restarted" in refresh.stdout, refresh.stdout[-3000:]
    assert init_statuses(puller_pod(kubectl, namespace))["moving"]["imageID"].endswith("@" + moved)
    assert moved in node.stored_digests(moving)

    # init -> daemon: back to one container per image, same DaemonSet
    ok(playbook("deploy", **on_real_node(node, namespace, images)))
    pod = puller_pod(kubectl, namespace)
    assert sorted(s["name"] for s in pod["status"]["containerStatuses"]) == ["moving", "no-shell"]
    assert all(s["ready"] for s in pod["status"]["containerStatuses"])
    assert kubectl.json("get", "daemonset", "cache", "-n", namespace)["metadata"]["uid"] == uid


def test_in_init_mode_an_image_the_registry_lacks_fails_naming_image_node_and_reason(node, playbook, namespace):
    """The pull error of an init container, as the kubelet reports it. A short wait_timeout keeps the test short:
    the failure at the deadline carries the same diagnosis as the one after a minute of nothing but pull errors."""
    missing = f"{node.registry}/kip-test/missing:1"
    images = [{"name": "no-shell", "image": f"{node.registry}/kip-test/no-shell:1"}, {"name": "missing", "image": missing}]
    run = playbook("deploy", **on_real_node(node, namespace, images, mode="init", wait_timeout=45))
    assert run.returncode != 0
    out = run.stdout
    assert f'image "{missing}" (init container "missing") on node "{NODE}"' in out, out[-4000:]
    assert "ErrImagePull" in out or "ImagePullBackOff" in out
    assert "not found" in out, "the kubelet's own message is shown"
