# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""image_puller_info's report, summary and printer, on the fixture objects of a rollout half done."""

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import info, readiness
from ansible_collections.kip.image_puller.tests.unit.plugins.module_utils._daemonset_fixtures import DELETE, obj, set_path

DIGEST = "sha256:" + "ab" * 32
GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def node(name, *, taints=(), labels=None, images=None):
    raw = {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": list(taints)}}
    if images is not None:
        raw["status"] = {"images": [{"names": names} for names in images]}
    return raw


NODES = [node("kwok-node-0"), node("kwok-node-1"), node("kwok-node-2"), node("kwok-gpu-0", taints=[GPU_TAINT])]


def ready_pod(**changes):
    """The pod on kwok-node-0, running both images of the template, with the image IDs the kubelet resolved."""
    return obj("ready_pod", **{
        "spec.containers.1.image": "quay.io/example/app:pull-fails",
        "status.containerStatuses.0.imageID": f"quay.io/example/java@{DIGEST}",
        "status.containerStatuses.1.imageID": f"quay.io/example/app@{DIGEST}",
        **changes,
    })


def unschedulable_pod():
    return obj("unschedulable_pod", **{"spec.containers": [{"name": "java", "image": "quay.io/example/java:17"},
                                                           {"name": "broken", "image": "quay.io/example/app:pull-fails"}]})


def by_node(result):
    return {entry["node"]: entry for entry in result["nodes"]}


def test_the_report_per_node_and_per_image():
    result = info.report(obj("daemonset"), NODES, [ready_pod(), obj("pull_failing_pod"), unschedulable_pod()])
    nodes = by_node(result)
    assert [entry["node"] for entry in result["nodes"]] == ["kwok-gpu-0", "kwok-node-0", "kwok-node-1", "kwok-node-2"]
    assert nodes["kwok-gpu-0"] == {
        "node": "kwok-gpu-0", "eligible": False, "not_eligible_because": "with untolerated taint dedicated=gpu:NoSchedule",
        "pod": None, "phase": None, "ready": False, "updated": False,
        "images": [
            {"container": "java", "image": "quay.io/example/java:17", "state": "waiting", "reason": None, "message": None,
             "image_id": None, "cached": False},
            {"container": "broken", "image": "quay.io/example/app:pull-fails", "state": "waiting", "reason": None,
             "message": None, "image_id": None, "cached": False},
        ],
    }
    assert nodes["kwok-node-0"]["ready"] and nodes["kwok-node-0"]["updated"]
    assert [(i["state"], i["image_id"], i["cached"]) for i in nodes["kwok-node-0"]["images"]] == [
        ("running", f"quay.io/example/java@{DIGEST}", True), ("running", f"quay.io/example/app@{DIGEST}", True)]
    failing = nodes["kwok-node-1"]["images"][1]
    assert (failing["state"], failing["reason"], failing["cached"]) == ("failed", "ImagePullBackOff", False)
    assert failing["message"] == 'Back-off pulling image "quay.io/example/app:pull-fails"'
    unscheduled = nodes["kwok-node-2"]["images"][0]
    assert (unscheduled["state"], unscheduled["reason"]) == ("waiting", "Unschedulable")
    assert unscheduled["message"].startswith("0/4 nodes are available")


def test_the_summary_says_which_node_lacks_which_image():
    result = info.report(obj("daemonset"), NODES, [ready_pod(), obj("pull_failing_pod"), unschedulable_pod()])
    summary = info.summarize(result)
    assert {key: summary[key] for key in ("exists", "nodes", "eligible", "ready", "updated", "complete")} == {
        "exists": True, "nodes": 4, "eligible": 3, "ready": 1, "updated": 3, "complete": False}
    assert summary["images"] == ["quay.io/example/java:17", "quay.io/example/app:pull-fails"]
    # java runs on kwok-node-1 but kwok-node-2 has no pod yet
    assert summary["cached_everywhere"] == []
    assert summary["fully_cached_nodes"] == ["kwok-node-0"]
    assert [(item["node"], item["container"], item["state"], item["reason"]) for item in summary["lacking"]] == [
        ("kwok-node-1", "broken", "failed", "ImagePullBackOff"),
        ("kwok-node-2", "java", "waiting", "Unschedulable"),
        ("kwok-node-2", "broken", "waiting", "Unschedulable"),
    ]


def test_every_image_on_every_eligible_node_is_complete():
    pods = [ready_pod(**{"metadata.name": f"p{i}", "spec.nodeName": f"kwok-node-{i}"}) for i in range(3)]
    summary = info.summarize(info.report(obj("daemonset"), NODES, pods))
    assert summary["complete"] is True
    assert summary["cached_everywhere"] == summary["images"]
    assert summary["lacking"] == []
    assert summary["fully_cached_nodes"] == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]


@pytest.mark.parametrize(
    ("changes", "state", "reason", "cached"),
    [
        pytest.param({"status.containerStatuses.0.state": {"waiting": {"reason": "ContainerCreating"}},
                      "status.containerStatuses.0.imageID": ""}, "pulling", "ContainerCreating", False,
                     id="ContainerCreating after the init container is pulling"),
        pytest.param({"status.initContainerStatuses.0.state": {"running": {}},
                      "status.containerStatuses.0.state": {"waiting": {"reason": "PodInitializing"}},
                      "status.containerStatuses.0.imageID": ""}, "waiting", "PodInitializing", False,
                     id="before the init container finished it is waiting"),
        pytest.param({"status.initContainerStatuses.0.state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}},
                      "status.containerStatuses.0.state": {"waiting": {"reason": "PodInitializing"}},
                      "status.containerStatuses.0.imageID": ""}, "waiting", "ErrImagePull", False,
                     id="a failing init container is the reason the images wait"),
        pytest.param({"status.containerStatuses.0.state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}},
                     "failed", "CrashLoopBackOff", True, id="a crashing container failed but its image is on the node"),
        pytest.param({"status.containerStatuses.0.state": {"terminated": {"reason": "Error", "exitCode": 127}}},
                     "failed", "Error", True, id="a terminated container failed with its exit code"),
        pytest.param({"spec.containers.0.image": "quay.io/example/java:11"}, "waiting", "PreviousTemplate", False,
                     id="a pod of an earlier template running another image has not cached this one"),
        pytest.param({"status.containerStatuses": DELETE}, "waiting", None, False, id="no status yet is waiting"),
    ],
)
def test_image_states(changes, state, reason, cached):
    image = by_node(info.report(obj("daemonset"), NODES, [ready_pod(**changes)]))["kwok-node-0"]["images"][0]
    assert (image["state"], image["reason"], image["cached"]) == (state, reason, cached)


def test_the_init_container_problem_names_it():
    pod = ready_pod(**{"status.initContainerStatuses.0.state": {"waiting": {"reason": "ImagePullBackOff", "message": "nope"}},
                       "status.containerStatuses": DELETE})
    image = by_node(info.report(obj("daemonset"), NODES, [pod]))["kwok-node-0"]["images"][0]
    assert image["reason"] == "ImagePullBackOff"
    assert image["message"] == 'init container "copy-sleep" (quay.io/eclipse/kubernetes-image-puller:next): nope'


def test_an_eligible_node_without_a_pod_says_so():
    image = by_node(info.report(obj("daemonset"), NODES, []))["kwok-node-1"]["images"][0]
    assert (image["state"], image["reason"]) == ("waiting", "NoPod")


def test_during_a_rolling_update_the_updated_pod_speaks_for_the_node():
    old = ready_pod(**{"metadata.name": "a-old", "metadata.labels.pod-template-generation": "1"})
    new = obj("pull_failing_pod", **{"metadata.name": "z-new", "spec.nodeName": "kwok-node-0"})
    entry = by_node(info.report(obj("daemonset"), NODES, [old, new]))["kwok-node-0"]
    assert (entry["pod"], entry["updated"], entry["images"][1]["state"]) == ("z-new", True, "failed")


@pytest.mark.parametrize(("revision_hash", "updated"), [(None, False), ("6d9f7c8b5", True), ("another", False)])
def test_a_pod_of_an_earlier_generation_is_up_to_date_when_it_runs_the_current_revision(revision_hash, updated):
    kept = ready_pod(**{"metadata.labels.pod-template-generation": "1"})  # its controller-revision-hash is 6d9f7c8b5
    entry = by_node(info.report(obj("daemonset"), NODES, [kept], revision_hash=revision_hash))["kwok-node-0"]
    assert entry["updated"] is updated


def test_pods_of_others_and_terminating_pods_are_left_out():
    stranger = ready_pod(**{"metadata.ownerReferences.0.uid": "another"})
    leaving = ready_pod(**{"metadata.deletionTimestamp": "2026-03-02T10:07:00Z"})
    assert by_node(info.report(obj("daemonset"), NODES, [stranger, leaving]))["kwok-node-0"]["pod"] is None


def test_a_pod_on_a_node_that_is_gone_is_reported_not_eligible():
    pod = ready_pod(**{"spec.nodeName": "kwok-node-9"})
    entry = by_node(info.report(obj("daemonset"), NODES, [pod]))["kwok-node-9"]
    assert (entry["eligible"], entry["not_eligible_because"], entry["pod"]) == (False, "the node does not exist", "kubernetes-image-puller-a1b2c")


def test_node_selector_exclusion_uses_the_placement_rule():
    daemonset = obj("daemonset", **{"spec.template.spec.nodeSelector": {"disk": "ssd"}})
    nodes = [node("a", labels={"disk": "ssd"}), node("b")]
    result = info.report(daemonset, nodes, [])
    assert [(n["node"], n["not_eligible_because"]) for n in result["nodes"]] == [("a", None), ("b", "not matching nodeSelector disk=ssd")]


def test_no_daemonset_reports_nothing():
    result = info.report(None, NODES, [])
    summary = info.summarize(result)
    assert (result["nodes"], summary["exists"], summary["complete"]) == ([], False, False)
    assert info.describe(result, summary, name="kip", namespace="ns") == ["DaemonSet ns/kip: not found"]


@pytest.mark.parametrize(
    ("names", "count", "listed", "truncated"),
    [
        pytest.param([["quay.io/example/java:17"]], 1, True, False, id="listed by the reference the template names"),
        pytest.param([[f"quay.io/example/java@{DIGEST}"]], 1, True, False, id="listed by the digest the kubelet resolved"),
        pytest.param([["quay.io/other:1"]], 1, False, False, id="not listed"),
        pytest.param([["quay.io/other:1"]], 50, False, True, id="a list of 50 may be cut short"),
    ],
)
def test_the_node_image_list_as_second_source(names, count, listed, truncated):
    nodes = [node("kwok-node-0", images=names * count)]
    entry = info.report(obj("daemonset"), nodes, [ready_pod()], node_images=True)["nodes"][0]
    assert (entry["images"][0]["listed"], entry["node_images_truncated"]) == (listed, truncated)


def test_describe_prints_one_line_per_node_and_each_missing_image():
    result = info.report(obj("daemonset"), NODES, [ready_pod(), obj("pull_failing_pod")])
    lines = info.describe(result, info.summarize(result), name="kubernetes-image-puller", namespace="image-puller")
    assert lines == [
        "DaemonSet image-puller/kubernetes-image-puller: 1/3 eligible nodes ready, 2 up to date; "
        "0/2 images cached on every eligible node; 3 missing (image, node) pairs",
        "kwok-gpu-0: not eligible: with untolerated taint dedicated=gpu:NoSchedule",
        "kwok-node-0: pod kubernetes-image-puller-a1b2c, ready; 2/2 images cached",
        "kwok-node-1: pod kubernetes-image-puller-d3e4f, not ready; 1/2 images cached",
        '  broken (quay.io/example/app:pull-fails): failed: ImagePullBackOff: Back-off pulling image "quay.io/example/app:pull-fails"',
        "kwok-node-2: no pod; 0/2 images cached",
        "  java (quay.io/example/java:17): waiting: NoPod: the DaemonSet controller has not created a pod for this node "
        "(see its FailedCreate events)",
        "  broken (quay.io/example/app:pull-fails): waiting: NoPod: the DaemonSet controller has not created a pod for this "
        "node (see its FailedCreate events)",
    ]


def test_the_summary_lines_are_the_headline_and_each_missing_image():
    result = info.report(obj("daemonset"), NODES, [ready_pod(), obj("pull_failing_pod"), unschedulable_pod()])
    lines = info.describe_summary(info.summarize(result), name="kubernetes-image-puller", namespace="image-puller")
    assert lines[0] == info.describe(result, info.summarize(result), name="kubernetes-image-puller", namespace="image-puller")[0]
    assert lines[1:] == [
        'kwok-node-1: broken (quay.io/example/app:pull-fails): failed: ImagePullBackOff: Back-off pulling image "quay.io/example/app:pull-fails"',
        "kwok-node-2: java (quay.io/example/java:17): waiting: Unschedulable: 0/4 nodes are available: 1 Insufficient memory, "
        "3 node(s) didn't match Pod's node affinity/selector.",
        "kwok-node-2: broken (quay.io/example/app:pull-fails): waiting: Unschedulable: 0/4 nodes are available: 1 Insufficient memory, "
        "3 node(s) didn't match Pod's node affinity/selector.",
    ]


@pytest.mark.parametrize(
    ("limit", "shown", "more"),
    [
        pytest.param(3, 3, None, id="all pairs when they fit"),
        pytest.param(5, 3, None, id="under the limit"),
        pytest.param(2, 2, "... and 1 more missing (image, node) pairs: ansible-playbook kip.image_puller.status lists every node",
                     id="cut, with a line that says how many more"),
        pytest.param(0, 0, "... and 3 more missing (image, node) pairs: ansible-playbook kip.image_puller.status lists every node",
                     id="the headline alone"),
    ],
)
def test_the_summary_lines_stop_at_the_limit_and_say_how_many_more(limit, shown, more):
    summary = info.summarize(info.report(obj("daemonset"), NODES, [ready_pod(), obj("pull_failing_pod"), unschedulable_pod()]))
    lines = info.describe_summary(summary, name="kubernetes-image-puller", namespace="image-puller", limit=limit)
    full = info.describe_summary(summary, name="kubernetes-image-puller", namespace="image-puller")
    assert len(summary["lacking"]) == 3 and len(full) == 4
    assert lines[:1 + shown] == full[:1 + shown]
    assert lines[1 + shown:] == ([more] if more else [])


def complete_rollout():
    """Every eligible node (kwok-node-0..2) runs a ready pod of the current template."""
    daemonset = obj("daemonset", **{"status.numberReady": 3, "status.numberAvailable": 3, "status.numberUnavailable": 0})
    pods = [ready_pod(**{"metadata.name": f"p-{i}", "spec.nodeName": f"kwok-node-{i}"}) for i in range(3)]
    return daemonset, pods


def test_a_complete_status_says_what_reading_every_node_and_pod_says():
    daemonset, pods = complete_rollout()
    from_status = info.summary_from_status(daemonset)
    read = info.summarize(info.report(daemonset, NODES, pods))
    left_out = {"nodes", "fully_cached_nodes"}
    assert {key: value for key, value in from_status.items() if key not in left_out} == \
        {key: value for key, value in read.items() if key not in left_out}
    assert from_status["nodes"] is None and from_status["fully_cached_nodes"] is None
    assert info.describe_summary(from_status, name="n", namespace="ns") == info.describe_summary(read, name="n", namespace="ns")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"status.numberAvailable": 2}, id="a pod not available"),
        pytest.param({"status.updatedNumberScheduled": 2}, id="a pod of the previous template"),
        pytest.param({"status.observedGeneration": 1}, id="the controller has not seen the template"),
    ],
)
def test_an_incomplete_status_says_nothing(changes):
    daemonset = complete_rollout()[0]
    for path, value in changes.items():
        set_path(daemonset, path, value)
    assert info.summary_from_status(daemonset) is None


@pytest.mark.parametrize(
    ("problems", "lines"),
    [
        pytest.param([], 1, id="no problem: the headline alone"),
        pytest.param([{"node": "kwok-node-1", "container": "broken", "image": "quay.io/example/app:pull-fails",
                       "reason": "ImagePullBackOff", "message": "Back-off pulling image"}], 2, id="a problem: one line more"),
        pytest.param([{"node": f"kwok-node-{i}", "container": "broken", "image": "quay.io/example/app:pull-fails",
                       "reason": "ImagePullBackOff"} for i in range(25)], 22, id="25 problems: 20 lines and a count of the rest"),
    ],
)
def test_a_rollout_not_waited_for_is_described_from_its_counts_and_problems(problems, lines):
    status = {"desired": 1001, "ready": 250, "updated": 300}
    described = info.describe_progress(status, problems, name="kubernetes-image-puller", namespace="image-puller")
    assert described[0] == ("DaemonSet image-puller/kubernetes-image-puller: rollout under way, not waited for: 250/1001 nodes ready, "
                            "300 up to date; ansible-playbook kip.image_puller.status shows each node and image")
    assert len(described) == lines
    if problems:
        first = problems[0]
        assert described[1] == f'image "quay.io/example/app:pull-fails" (container "broken") on node "{first["node"]}": ImagePullBackOff' + (
            ": Back-off pulling image" if "message" in first else "")
    if len(problems) > 20:
        assert described[-1] == "... and 5 more (see 'problems' in the result)"


def test_a_rollout_the_controller_has_not_taken_up_shows_no_counts_of_the_previous_template():
    daemonset = {"metadata": {"generation": 3},
                 "status": {"observedGeneration": 2, "desiredNumberScheduled": 1001, "numberReady": 1001, "updatedNumberScheduled": 1001}}
    status = {"desired": 1001, "ready": 1001, "updated": 1001}
    described = info.describe_progress(status, [], name="kubernetes-image-puller", namespace="image-puller",
                                       unobserved=readiness.generation_unobserved(daemonset))
    assert described == ["DaemonSet image-puller/kubernetes-image-puller: rollout under way, not waited for: the DaemonSet "
                         "controller has not yet observed generation 3 (observed: 2); ansible-playbook kip.image_puller.status "
                         "shows each node and image"]
