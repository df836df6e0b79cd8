# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""kip.image_puller.image_puller_info run for real, through ansible-playbook, against the kwok nodes of the local cluster."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from support import wait_for
from test_daemonset_module import ANSIBLE_PLAYBOOK, NAME, Run, daemonset, fixture_module, fixture_plain_nodes  # noqa: F401  (fixtures)

pytestmark = pytest.mark.cluster

GOOD, BAD = "registry.example/java:17", "registry.example/app:pull-fails"


@pytest.fixture(name="info")
def fixture_info(cluster_env, tmp_path):
    """Runs image_puller_info in a one-task play, with the connection from K8S_AUTH_KUBECONFIG only."""
    env = {key: value for key, value in cluster_env.items() if key != "KUBECONFIG"}
    env.update(ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")

    def run(*flags: str, **params) -> Run:
        playbook = tmp_path / "info.yml"
        playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                             "tasks": [{"name": "info", "kip.image_puller.image_puller_info": params}]}]))
        return Run(subprocess.run(
            [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
             *flags, str(playbook)], env=env, capture_output=True, text=True, check=False, timeout=300))

    return run


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
