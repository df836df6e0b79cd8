# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""kip.image_puller.image_puller_info run for real, through ansible-playbook, against the kwok nodes of the local cluster."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from support import wait_for
from test_daemonset_module import ANSIBLE_PLAYBOOK, NAME, Run, daemonset
# fixtures, used by their names
from test_daemonset_module import fixture_module, fixture_plain_nodes  # noqa: F401  # pylint: disable=unused-import

pytestmark = pytest.mark.cluster

GOOD, BAD, OTHER = "registry.example/java:17", "registry.example/app:pull-fails", "registry.example/node:20"


@pytest.fixture(name="run_module")
def fixture_run_module(cluster_env, tmp_path):
    """Runs one module of the collection in a one-task play, with the connection from K8S_AUTH_KUBECONFIG only."""
    env = {key: value for key, value in cluster_env.items() if key != "KUBECONFIG"}
    env.update(ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")

    def run(module_name: str, *flags: str, **params) -> Run:
        playbook = tmp_path / f"{module_name}.yml"
        playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                             "tasks": [{"name": module_name, f"kip.image_puller.{module_name}": params}]}]))
        return Run(subprocess.run(
            [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
             *flags, str(playbook)], env=env, capture_output=True, text=True, check=False, timeout=300))

    return run


@pytest.fixture(name="info")
def fixture_info(run_module):
    return lambda *flags, **params: run_module("image_puller_info", *flags, **params)


def test_per_node_and_per_image_with_the_kubelets_reasons(module, info, restricted, plain_nodes):
    applied = module(definition=daemonset(restricted, GOOD, BAD), wait=False)
    assert not applied.failed, applied["msg"]

    def settled():
        result = info("--check", namespace=restricted, name=NAME)
        nodes = [n for n in result["nodes"] if n["eligible"]]
        states = {(n["node"], i["image"]): i["state"] for n in nodes for i in n["images"]}
        return result if len(nodes) == len(plain_nodes) and set(states.values()) == {"running", "failed"} else None

    result = wait_for(settled, timeout=120, what="java running and the bad image failing on every plain node", interval=2)
    assert result["changed"] is False
    assert result["exists"] is True
    assert [n["node"] for n in result["nodes"] if n["eligible"]] == plain_nodes
    others = [n for n in result["nodes"] if not n["eligible"]]
    assert others and all(n["not_eligible_because"].startswith("with untolerated taint") and n["pod"] is None for n in others)
    for node in (n for n in result["nodes"] if n["eligible"]):
        good, bad = node["images"]
        assert (good["image"], good["state"], good["cached"]) == (GOOD, "running", True)
        assert (bad["image"], bad["state"], bad["cached"]) == (BAD, "failed", False)
        assert bad["reason"] in ("ErrImagePull", "ImagePullBackOff") and bad["message"]
        assert node["pod"] and node["updated"] and not node["ready"]
    summary = result["summary"]
    assert (summary["eligible"], summary["ready"], summary["updated"], summary["complete"]) == (len(plain_nodes), 0, len(plain_nodes), False)
    assert summary["cached_everywhere"] == [GOOD]
    assert sorted((item["node"], item["image"]) for item in summary["lacking"]) == [(node, BAD) for node in plain_nodes]
    assert summary["fully_cached_nodes"] == []
    assert result["lines"][0].startswith(f"DaemonSet {restricted}/{NAME}: 0/{len(plain_nodes)} eligible nodes ready")

    fixed = module(definition=daemonset(restricted, GOOD))
    assert not fixed.failed, fixed["msg"]
    done = info(namespace=restricted, name=NAME, node_images=True)
    summary = done["summary"]
    assert (summary["ready"], summary["complete"], summary["lacking"]) == (len(plain_nodes), True, [])
    assert summary["fully_cached_nodes"] == plain_nodes
    assert all("listed" in image for node in done["nodes"] for image in node["images"])


def test_a_missing_daemonset_is_reported_not_failed(info, restricted):
    result = info(namespace=restricted, name="nothing-here")
    assert not result.failed, result["msg"]
    assert (result["exists"], result["nodes"], result["summary"]["complete"]) == (False, [], False)
    assert result["lines"] == [f"DaemonSet {restricted}/nothing-here: not found"]


def labelled(kubectl, key: str) -> dict[str, str]:
    return {node["metadata"]["name"]: node["metadata"]["labels"][key] for node in kubectl.json("get", "nodes", "-l", key)["items"]}


def test_nodes_with_every_image_are_labelled_and_the_label_follows_the_truth(module, run_module, restricted, kubectl, plain_nodes):
    key = f"image-puller.kip/{NAME}-{restricted}"   # a key of this test's own: tests run side by side on one cluster

    def labels(*flags, **params):
        return run_module("image_puller_node_labels", *flags, name=NAME, namespace=restricted, label=key, **params)

    assert not module(definition=daemonset(restricted, GOOD)).failed
    gpu = next(node["metadata"]["name"] for node in kubectl.json("get", "nodes")["items"] if node["metadata"]["name"] not in plain_nodes)
    kubectl.run("label", "node", gpu, f"{key}=cached")   # wrong: the DaemonSet does not run there
    try:
        checked = labels("--check", "--diff")
        assert not checked.failed, checked["msg"]
        assert (checked["changed"], checked["labelled"], checked["unlabelled"]) == (True, plain_nodes, [gpu])
        assert labelled(kubectl, key) == {gpu: "cached"}, "check mode changes no label"

        first = labels()
        assert not first.failed, first["msg"]
        assert (first["changed"], first["labelled"], first["unlabelled"], first["nodes"]) == (True, plain_nodes, [gpu], plain_nodes)
        assert labelled(kubectl, key) == dict.fromkeys(plain_nodes, "cached")
        again = labels()
        assert (again["changed"], again["labelled"], again["unlabelled"]) == (False, [], [])

        # an image no node can pull: no node has every image any more
        assert not module(definition=daemonset(restricted, GOOD, BAD), wait=False).failed
        wait_for(lambda: labels()["summary"]["fully_cached_nodes"] == [], timeout=60, what="the new template on every node", interval=2)
        assert labelled(kubectl, key) == {}

        # a new template (going back to the first one is another matter: see the report of issue 10)
        back = module(definition=daemonset(restricted, OTHER))
        assert not back.failed, back["msg"]
        assert labels()["nodes"] == plain_nodes
        gone = labels(state="absent")
        assert (gone["changed"], gone["unlabelled"], gone["summary"]) == (True, plain_nodes, None)
        assert labelled(kubectl, key) == {}
    finally:
        kubectl.run("label", "node", "--all", f"{key}-", check=False)
