# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""image_puller_mode: the two pod shapes the role's template writes, their footprint, and how info reads init containers.

The shapes are rendered by the role's own template (one ansible-playbook run for both), never
written here by hand, so the tables below test what the role deploys.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import info, mode, readiness
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.footprint import pod_footprint
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quota import check_daemonset, describe_shapes
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.settings import SettingsError, normalise

ROLE = Path(__file__).resolve().parents[4] / "roles" / "image_puller"
ROLE_DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
IMAGES = [{"name": "web", "image": "registry.example.com/web:1.0"}, {"name": "tools", "image": "registry.example.com/tools:2"},
          {"name": "scratch", "image": "registry.example.com/scratch:3"}]
DIGEST = "sha256:" + "cd" * 32
MI = 1024 * 1024

RENDER = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: kip.image_puller.image_puller, tasks_from: validate.yml}
    - ansible.builtin.include_role: {name: kip.image_puller.image_puller, tasks_from: render.yml, public: true}
    - ansible.builtin.copy:
        content: "{{ {'deployed': _image_puller_daemonsets[0], 'other': _image_puller_other_shapes[0]} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """The role's DaemonSet in init mode and (its other shape) in daemon mode, from one playbook run."""
    tmp = tmp_path_factory.mktemp("render")
    (tmp / "render.yml").write_text(RENDER, encoding="utf-8")
    (tmp / "vars.yml").write_text(yaml.safe_dump({"image_puller_images": IMAGES, "image_puller_platform": "kubernetes",
                                                  "image_puller_mode": "init", "out": str(tmp / "out.json")}), encoding="utf-8")
    if importlib.util.find_spec("ansible.__main__") is None:
        pytest.skip("this Python has no ansible command line (ansible-test units); make unit renders the shapes")
    # `python -m ansible playbook` and the folder this collection was imported from: the same under plain pytest
    # (make unit) and under ansible-test units, whose Python has no ansible-playbook script beside it.
    collections = Path(mode.__file__).resolve().parents[6] if "ansible_collections" in Path(mode.__file__).resolve().parts else None
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
           "ANSIBLE_COLLECTIONS_PATH": ":".join(str(path) for path in (collections, sysconfig.get_paths()["purelib"]) if path),
           "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    run = subprocess.run([sys.executable, "-m", "ansible", "playbook", str(tmp / "render.yml"), "-e", f"@{tmp / 'vars.yml'}",
                          "-e", f"ansible_python_interpreter={sys.executable}"], env=env, capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    out = json.loads((tmp / "out.json").read_text(encoding="utf-8"))
    return {"init": out["deployed"], "daemon": out["other"]}


def pod_spec(daemonset: dict) -> dict:
    return daemonset["spec"]["template"]["spec"]


def test_the_daemon_shape_runs_one_container_per_image_and_carries_no_mode_annotation(rendered):
    daemonset = rendered["daemon"]
    assert mode.MODE_ANNOTATION not in daemonset["spec"]["template"]["metadata"]["annotations"]
    assert [c["name"] for c in pod_spec(daemonset)["initContainers"]] == ["copy-sleep"]
    assert [(c["name"], c["command"], c["args"]) for c in pod_spec(daemonset)["containers"]] == [
        (item["name"], ["/kip/sleep"], ["3600s"]) for item in IMAGES]
    assert mode.mode_of(daemonset["spec"]["template"]) == "daemon"


def test_the_init_shape_runs_each_image_as_an_init_container_after_the_copy_and_one_keeper(rendered):
    daemonset = rendered["init"]
    template = daemonset["spec"]["template"]
    assert template["metadata"]["annotations"][mode.MODE_ANNOTATION] == "init"
    inits = pod_spec(daemonset)["initContainers"]
    assert inits[0]["name"] == "copy-sleep" and inits[0]["command"] == ["/bin/cp", "/bin/sleep", "/kip/sleep"]
    # the copied static sleep for zero seconds: images without a shell or a sleep of their own work
    assert [(c["name"], c["image"], c["command"], c["args"], c["imagePullPolicy"]) for c in inits[1:]] == [
        (item["name"], item["image"], ["/kip/sleep"], ["0"], "Always") for item in IMAGES]
    assert all(c["volumeMounts"] == [{"name": "kip", "mountPath": "/kip", "readOnly": True}] for c in inits[1:])
    [keeper] = pod_spec(daemonset)["containers"]
    assert (keeper["name"], keeper["image"], keeper["command"], keeper["args"]) == (
        mode.KEEPER_CONTAINER, ROLE_DEFAULTS["image_puller_puller_image"], ["/bin/sleep"], ["3600s"])
    # the same hardening as every other container of the role
    for container in inits + [keeper]:
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    # everything but the containers is the same in both shapes: same selector, same DaemonSet, a rolling update
    other = rendered["daemon"]
    assert daemonset["metadata"] == other["metadata"] and daemonset["spec"]["selector"] == other["spec"]["selector"]
    assert {k: v for k, v in pod_spec(daemonset).items() if k not in ("initContainers", "containers")} == \
        {k: v for k, v in pod_spec(other).items() if k not in ("initContainers", "containers")}


def test_both_shapes_cache_the_same_images_in_the_same_order(rendered):
    expected = [{"container": item["name"], "image": item["image"]} for item in IMAGES]
    assert mode.daemonset_images(rendered["init"]) == expected == mode.daemonset_images(rendered["daemon"])
    assert readiness.daemonset_images(rendered["init"]) == expected


@pytest.mark.parametrize("images, daemon_memory_limit, init_memory_limit", [
    (1, 20, 20),    # one image: the copy, the image and the keeper are one container's worth either way
    (3, 60, 20),
    (50, 1000, 20),  # the seeds' pain: the daemon shape grows with the images, the init shape does not
])
def test_the_footprint_is_the_larger_of_the_biggest_init_container_and_the_sum_of_the_containers(
        rendered, images, daemon_memory_limit, init_memory_limit):
    def widened(daemonset: dict, shape: str) -> dict:
        spec = json.loads(json.dumps(pod_spec(daemonset)))
        key = "containers" if shape == "daemon" else "initContainers"
        template = spec[key][-1]
        keep = spec[key][:1] if shape == "init" else []
        spec[key] = keep + [{**template, "name": f"image-{index}"} for index in range(images)]
        return spec

    daemon = pod_footprint(widened(rendered["daemon"], "daemon"))
    init = pod_footprint(widened(rendered["init"], "init"))
    assert daemon.usage["limits.memory"] == daemon_memory_limit * MI
    assert init.usage["limits.memory"] == init_memory_limit * MI
    assert init.usage["requests.cpu"] == Fraction(5, 100)  # 50m: one container's request
    assert daemon.usage["requests.cpu"] == Fraction(5, 100) * images


@pytest.mark.parametrize("init_limit, keeper_limit, expected, how", [
    ("20Mi", "20Mi", "20Mi", "20Mi x 1 container"),               # a tie: the containers' sum stands
    ("64Mi", "20Mi", "64Mi", '64Mi (init container "big")'),      # the largest init container wins
    ("20Mi", "100Mi", "100Mi", "100Mi x 1 container"),            # the sum of the containers wins
])
def test_the_rule_per_resource_names_what_set_the_figure(init_limit, keeper_limit, expected, how):
    spec = {"initContainers": [{"name": "copy-sleep", "resources": {"limits": {"memory": "10Mi"}}},
                               {"name": "big", "resources": {"limits": {"memory": init_limit}}}],
            "containers": [{"name": "keep-pod", "resources": {"limits": {"memory": keeper_limit}}}]}
    footprint = pod_footprint(spec)
    assert footprint.printable()["limits.memory"] == expected
    assert footprint.explain["limits.memory"] == how


def test_the_pre_flight_reports_both_shapes_and_checks_only_the_deployed_one(rendered):
    nodes = [{"metadata": {"name": f"node-{index}", "labels": {}}, "spec": {}} for index in range(4)]
    quota = {"metadata": {"name": "compute"}, "spec": {"hard": {"limits.memory": "100Mi"}}, "status": {"used": {}}}
    fits = check_daemonset(rendered["init"], namespace="k8s-image-puller", nodes=nodes, resource_quotas=[quota],
                           compare=[rendered["daemon"]])
    assert fits["fits"]  # 4 nodes x 20Mi = 80Mi of 100Mi
    shapes = {shape["mode"]: shape for shape in fits["shapes"]}
    assert [shape["mode"] for shape in fits["shapes"]] == ["init", "daemon"]
    assert (shapes["init"]["pod"]["limits.memory"], shapes["init"]["total"]["limits.memory"]) == ("20Mi", "80Mi")
    assert (shapes["daemon"]["pod"]["limits.memory"], shapes["daemon"]["total"]["limits.memory"]) == ("60Mi", "240Mi")
    assert shapes["daemon"]["pod_explained"]["limits.memory"] == "20Mi x 3 containers"
    assert fits["shape_lines"][0].startswith("image_puller_mode init needs limits.cpu 200m")
    assert "limits.memory 80Mi" in fits["shape_lines"][0]
    assert fits["shape_lines"][1].startswith("image_puller_mode daemon would need") and "limits.memory 240Mi" in fits["shape_lines"][1]
    assert fits["shape_lines"][1] in fits["messages"]

    # the same quota refuses the daemon shape: what init saves is what makes it fit
    refused = check_daemonset(rendered["daemon"], namespace="k8s-image-puller", nodes=nodes, resource_quotas=[quota],
                              compare=[rendered["init"]])
    assert not refused["fits"]
    assert [shape["mode"] for shape in refused["shapes"]] == ["daemon", "init"]
    # without a shape to compare with, only the deployed one is reported, and the messages are as before
    alone = check_daemonset(rendered["daemon"], namespace="k8s-image-puller", nodes=nodes, resource_quotas=[quota])
    assert len(alone["shapes"]) == 1 and not any(line.startswith("image_puller_mode") for line in alone["messages"])


def test_describe_shapes_shows_requests_and_limits_only():
    shape = {"mode": "init", "nodes": 2, "pod": {"cpu": "50m", "limits.memory": "20Mi", "requests.cpu": "50m"},
             "total": {"cpu": "100m", "limits.memory": "40Mi", "requests.cpu": "100m"}}
    assert describe_shapes([shape]) == ["image_puller_mode init needs limits.memory 20Mi, requests.cpu 50m per pod; "
                                        "on 2 eligible nodes limits.memory 40Mi, requests.cpu 100m"]


@pytest.mark.parametrize("value, problem", [
    ("daemon", None), ("init", None), (" init ", None),
    ("sidecar", 'image_puller_mode: must be one of daemon, init, got "sidecar"'),
    ("", "image_puller_mode: must not be empty"),
])
def test_the_mode_setting(value, problem):
    raw = {**ROLE_DEFAULTS, "image_puller_images": IMAGES, "image_puller_mode": value}
    if problem is None:
        settings = normalise(raw)
        assert settings["mode"] == value.strip()
        assert settings["other_mode"] == ("daemon" if value.strip() == "init" else "init")
        assert (settings["keeper_container"], settings["mode_annotation"]) == (mode.KEEPER_CONTAINER, mode.MODE_ANNOTATION)
    else:
        with pytest.raises(SettingsError) as caught:
            normalise(raw)
        assert problem in caught.value.errors


def test_the_keeper_name_is_reserved_in_init_mode_only():
    images = [{"name": mode.KEEPER_CONTAINER, "image": "registry.example.com/keep:1"}]
    assert normalise({**ROLE_DEFAULTS, "image_puller_images": images})["images"][0]["name"] == mode.KEEPER_CONTAINER
    with pytest.raises(SettingsError) as caught:
        normalise({**ROLE_DEFAULTS, "image_puller_images": images, "image_puller_mode": "init"})
    assert any(mode.KEEPER_CONTAINER in error for error in caught.value.errors)


# ---- init containers as info, readiness and diagnosis read them ------------------------------------------

def init_daemonset() -> dict:
    copy = {"name": "copy-sleep", "image": "puller:1"}
    return {"metadata": {"name": "cache", "namespace": "ns", "uid": "ds-uid",
                         "annotations": {readiness.TEMPLATE_GENERATION_ANNOTATION: "1"}},
            "spec": {"selector": {"matchLabels": {"app": "cache"}},
                     "template": {"metadata": {"annotations": {mode.MODE_ANNOTATION: "init"}},
                                  "spec": {"initContainers": [copy] + [dict(item) for item in IMAGES],
                                           "containers": [{"name": mode.KEEPER_CONTAINER, "image": "puller:1"}]}}},
            "status": {"desiredNumberScheduled": 1, "updatedNumberScheduled": 1, "numberAvailable": 0, "observedGeneration": 1},
            }


def terminated(name: str, code: int = 0, image_id: str = "") -> dict:
    return {"name": name, "imageID": image_id, "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}}


def waiting(name: str, reason: str, message: str = "") -> dict:
    return {"name": name, "imageID": "", "state": {"waiting": {"reason": reason, "message": message}}}


def init_pod(init_statuses: list[dict], keeper: dict | None = None) -> dict:
    daemonset = init_daemonset()
    return {"metadata": {"name": "cache-abc", "namespace": "ns", "labels": {"app": "cache", readiness.TEMPLATE_GENERATION_LABEL: "1"},
                         "annotations": {mode.MODE_ANNOTATION: "init"},
                         "ownerReferences": [{"kind": "DaemonSet", "name": "cache", "uid": "ds-uid", "controller": True}]},
            "spec": {**daemonset["spec"]["template"]["spec"], "nodeName": "node-0"},
            "status": {"phase": "Pending" if keeper is None else "Running", "initContainerStatuses": init_statuses,
                       "containerStatuses": [keeper or waiting(mode.KEEPER_CONTAINER, "PodInitializing")]}}


NODE = [{"metadata": {"name": "node-0", "labels": {}}, "spec": {}}]
PULL_FAILED = 'failed to pull and unpack image "registry.example.com/tools:2": not found'


@pytest.mark.parametrize("statuses, keeper, expected, ready", [
    # every image's init container ran and exited 0: cached, with the image ID the kubelet resolved
    ([terminated("copy-sleep", image_id="puller@x")] + [terminated(i["name"], image_id=f"{i['image']}@{DIGEST}") for i in IMAGES],
     {"name": mode.KEEPER_CONTAINER, "ready": True, "imageID": "puller@x", "state": {"running": {}}},
     [("completed", True, None), ("completed", True, None), ("completed", True, None)], True),
    # the second image cannot be pulled: it fails, the third waits behind it with the reason
    ([terminated("copy-sleep"), terminated("web", image_id=f"web@{DIGEST}"), waiting("tools", "ErrImagePull", PULL_FAILED),
      waiting("scratch", "PodInitializing")],
     None, [("completed", True, None), ("failed", False, "ErrImagePull"), ("waiting", False, "ErrImagePull")], False),
    # the kubelet is at the first image (the copy is done): pulling; the others wait their turn
    ([terminated("copy-sleep"), waiting("web", "PodInitializing"), waiting("tools", "PodInitializing"), waiting("scratch", "PodInitializing")],
     None, [("pulling", False, "PodInitializing"), ("waiting", False, "PodInitializing"), ("waiting", False, "PodInitializing")], False),
    # the copied sleep failed to run in an image (exit code 1): failed, not cached, though the image is there
    ([terminated("copy-sleep"), terminated("web", 1, image_id=f"web@{DIGEST}"), waiting("tools", "PodInitializing"),
      waiting("scratch", "PodInitializing")],
     None, [("failed", True, "Error"), ("waiting", False, "Error"), ("waiting", False, "Error")], False),
])
def test_info_reads_init_containers(statuses, keeper, expected, ready):
    pod = init_pod(statuses, keeper)
    report = info.report(init_daemonset(), NODE, [pod])
    [entry] = report["nodes"]
    assert [image["container"] for image in entry["images"]] == [item["name"] for item in IMAGES]
    assert [(image["state"], image["cached"], image["reason"]) for image in entry["images"]] == expected
    assert entry["ready"] is ready and readiness.pod_is_ready(pod) is ready
    summary = info.summarize(report)
    assert summary["images"] == [item["image"] for item in IMAGES]
    assert summary["complete"] is all(state == "completed" for state, _cached, _reason in expected)


@pytest.mark.parametrize("image_id", [f"registry.example.com/x@{DIGEST}", ""])
def test_a_completed_init_container_is_cached_and_reports_the_digest_the_kubelet_gave(image_id):
    # it ran from its image, so the image was on the node; kwok's simulated kubelet gives no image ID
    statuses = [terminated("copy-sleep")] + [terminated(i["name"], image_id=image_id) for i in IMAGES]
    report = info.report(init_daemonset(), NODE, [init_pod(statuses, {"name": mode.KEEPER_CONTAINER, "ready": True, "state": {"running": {}}})])
    assert [(image["image_id"], image["cached"]) for image in report["nodes"][0]["images"]] == [(image_id or None, True)] * len(IMAGES)
    lines = info.describe(report, info.summarize(report), name="cache", namespace="ns")
    assert "node-0: pod cache-abc, ready; 3/3 images cached" in lines


def test_a_pod_of_the_other_shape_is_the_previous_template_for_every_image():
    # daemon -> init: the node's pod still runs the images as containers
    daemon_pod = init_pod([terminated("copy-sleep")])
    daemon_pod["metadata"]["annotations"] = {}
    daemon_pod["spec"] = {"initContainers": [{"name": "copy-sleep", "image": "puller:1"}], "containers": [dict(i) for i in IMAGES],
                          "nodeName": "node-0"}
    report = info.report(init_daemonset(), NODE, [daemon_pod])
    assert {(image["state"], image["reason"]) for image in report["nodes"][0]["images"]} == {("waiting", "PreviousTemplate")}


def test_diagnosis_names_the_image_node_and_reason_of_an_init_container():
    from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import diagnosis

    pod = init_pod([terminated("copy-sleep"), terminated("web"), waiting("tools", "ImagePullBackOff", PULL_FAILED),
                    waiting("scratch", "PodInitializing")])
    problems = diagnosis.diagnose(init_daemonset(), [pod])
    assert [diagnosis.describe_problem(problem) for problem in problems] == [
        f'image "registry.example.com/tools:2" (init container "tools") on node "node-0": ImagePullBackOff: {PULL_FAILED}']
    assert diagnosis.hopeless(problems)


@pytest.mark.parametrize("status, shows", [
    ("Init:ErrImagePull", True), ("Init:ImagePullBackOff", True), ("Init:2/4", False), ("PodInitializing", False),
    ("Init:Error", True), ("Init:CrashLoopBackOff", True),
])
def test_the_table_row_of_an_init_pod(status, shows):
    assert readiness.row_shows_problem({"status": status, "node": "node-0"}) is shows


def test_a_pre_flight_that_reads_nothing_still_reports_both_shapes_on_the_nodes_the_daemonset_runs_on(rendered):
    from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.preflight import unchanged_result

    current = {"status": {"desiredNumberScheduled": 20}}
    result = unchanged_result(rendered["init"], current, [rendered["daemon"]])
    assert result["unchanged"] and result["fits"]
    assert [(shape["mode"], shape["nodes"], shape["total"]["limits.memory"]) for shape in result["shapes"]] == [
        ("init", 20, "400Mi"), ("daemon", 20, "1200Mi")]
    assert result["shape_lines"] == result["messages"][1:]
    assert unchanged_result(rendered["init"], current)["messages"] == result["messages"][:1]
