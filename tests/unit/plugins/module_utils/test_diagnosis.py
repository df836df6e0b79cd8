# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import diagnosis
from ansible_collections.kip.image_puller.tests.unit.plugins.module_utils._daemonset_fixtures import obj

UTC = datetime.timezone.utc


def waiting(reason, message="", **extra):
    return {"name": "broken", "image": "quay.io/example/app:pull-fails", "ready": False,
            "state": {"waiting": {"reason": reason, "message": message}}, **extra}


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(obj("ready_pod"), [], id="a running pod with ready containers has no problem"),
        pytest.param(
            obj("pull_failing_pod"),
            [{"node": "kwok-node-1", "pod": "kubernetes-image-puller-d3e4f", "container": "broken", "init_container": False,
              "image": "quay.io/example/app:pull-fails", "reason": "ImagePullBackOff",
              "message": 'Back-off pulling image "quay.io/example/app:pull-fails"'}],
            id="ImagePullBackOff names the image, container and node",
        ),
        pytest.param(
            obj("unschedulable_pod"),
            [{"node": "kwok-node-2", "pod": "kubernetes-image-puller-g5h6i", "container": None, "init_container": False,
              "image": None, "reason": "Unschedulable",
              "message": "0/4 nodes are available: 1 Insufficient memory, 3 node(s) didn't match Pod's node affinity/selector."}],
            id="an unschedulable pod names the node its affinity pins it to and the scheduler's message",
        ),
    ],
)
def test_pod_problems(pod, expected):
    assert diagnosis.pod_problems(pod) == expected


@pytest.mark.parametrize(
    ("reason", "is_problem"),
    [
        pytest.param("ErrImagePull", True, id="ErrImagePull is a problem"),
        pytest.param("ImagePullBackOff", True, id="ImagePullBackOff is a problem"),
        pytest.param("InvalidImageName", True, id="InvalidImageName is a problem"),
        pytest.param("CreateContainerConfigError", True, id="CreateContainerConfigError is a problem"),
        pytest.param("CrashLoopBackOff", True, id="CrashLoopBackOff is a problem"),
        pytest.param("ContainerCreating", False, id="ContainerCreating is progress, not a problem"),
        pytest.param("PodInitializing", False, id="PodInitializing is progress, not a problem"),
    ],
)
def test_waiting_reasons(reason, is_problem):
    pod = obj("pull_failing_pod", **{"status.containerStatuses.1": waiting(reason, "text")})
    assert [p["reason"] for p in diagnosis.pod_problems(pod)] == ([reason] if is_problem else [])


def test_a_failing_init_container_is_reported_as_one():
    pod = obj("pull_failing_pod", **{
        "status.initContainerStatuses.0": {
            "name": "copy-sleep", "image": "quay.io/eclipse/kubernetes-image-puller:next", "ready": False,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "rpc error: not found"}}},
        "status.containerStatuses": [],
    })
    assert diagnosis.pod_problems(pod) == [{
        "node": "kwok-node-1", "pod": "kubernetes-image-puller-d3e4f", "container": "copy-sleep", "init_container": True,
        "image": "quay.io/eclipse/kubernetes-image-puller:next", "reason": "ErrImagePull", "message": "rpc error: not found"}]


def test_crash_loop_message_carries_the_last_exit():
    status = waiting("CrashLoopBackOff", "back-off 40s restarting failed container",
                     lastState={"terminated": {"reason": "Error", "exitCode": 127}})
    pod = obj("pull_failing_pod", **{"status.containerStatuses.1": status})
    assert diagnosis.pod_problems(pod)[0]["message"] == "back-off 40s restarting failed container (last exit: Error, code 127)"


def test_the_image_comes_from_the_spec_not_the_resolved_status():
    status = waiting("ErrImagePull")
    status["image"] = "quay.io/example/app@sha256:0123"
    pod = obj("pull_failing_pod", **{"status.containerStatuses.1": status})
    assert diagnosis.pod_problems(pod)[0]["image"] == "quay.io/example/app:pull-fails"


def test_failed_create_events_of_the_daemonset_are_problems():
    problems = diagnosis.creation_problems(obj("daemonset"), [obj("failed_create_event")])
    assert [(p["reason"], p["node"], p["image"]) for p in problems] == [("FailedCreate", None, None)]
    assert "exceeded quota: puller-quota" in problems[0]["message"]


@pytest.mark.parametrize(
    ("event", "since", "reported"),
    [
        pytest.param(obj("failed_create_event"), datetime.datetime(2026, 3, 2, 10, 6, tzinfo=UTC), True,
                     id="an event last seen after the rollout began is reported"),
        pytest.param(obj("failed_create_event"), datetime.datetime(2026, 3, 2, 11, 0, tzinfo=UTC), False,
                     id="an event last seen before the rollout began is old news"),
        pytest.param(obj("failed_create_event", reason="SuccessfulCreate"), None, False, id="SuccessfulCreate is not a problem"),
        pytest.param(obj("failed_create_event", **{"involvedObject.name": "other"}), None, False,
                     id="events of another DaemonSet are ignored"),
        pytest.param(obj("failed_create_event", **{"involvedObject.uid": "old-uid"}), None, False,
                     id="events of an earlier DaemonSet of the same name are ignored"),
    ],
)
def test_which_failed_create_events_count(event, since, reported):
    assert bool(diagnosis.creation_problems(obj("daemonset"), [event], since=since)) is reported


def test_repeated_refusals_are_reported_once():
    events = [obj("failed_create_event"), obj("failed_create_event", lastTimestamp="2026-03-02T10:07:00Z")]
    assert len(diagnosis.creation_problems(obj("daemonset"), events)) == 1


def test_diagnose_orders_pods_by_node_then_adds_refusals_and_skips_foreign_and_terminating_pods():
    foreign = obj("pull_failing_pod", **{"metadata.ownerReferences.0.uid": "another", "spec.nodeName": "kwok-node-0"})
    terminating = obj("pull_failing_pod", **{"metadata.deletionTimestamp": "2026-03-02T10:07:00Z"})
    pods = [obj("unschedulable_pod"), obj("pull_failing_pod"), obj("ready_pod"), foreign, terminating]
    problems = diagnosis.diagnose(obj("daemonset"), pods, [obj("failed_create_event")])
    assert [(p["node"], p["reason"]) for p in problems] == [
        ("kwok-node-1", "ImagePullBackOff"), ("kwok-node-2", "Unschedulable"), (None, "FailedCreate")]


@pytest.mark.parametrize(
    ("problem", "line"),
    [
        pytest.param(
            {"node": "kwok-node-1", "pod": "p", "container": "x", "init_container": False, "image": "quay.io/x:pull-fails",
             "reason": "ImagePullBackOff", "message": 'Back-off pulling image "quay.io/x:pull-fails"'},
            'image "quay.io/x:pull-fails" (container "x") on node "kwok-node-1": ImagePullBackOff: Back-off pulling image "quay.io/x:pull-fails"',
            id="a container problem names image, container, node, reason and message"),
        pytest.param(
            {"node": "kwok-node-0", "pod": "p", "container": "copy-sleep", "init_container": True, "image": "puller:1",
             "reason": "ErrImagePull", "message": ""},
            'image "puller:1" (init container "copy-sleep") on node "kwok-node-0": ErrImagePull',
            id="an init container says so and an empty message is left out"),
        pytest.param(
            {"node": "kwok-node-2", "pod": "p-1", "container": None, "init_container": False, "image": None,
             "reason": "Unschedulable", "message": "0/4 nodes are available"},
            'pod "p-1" on node "kwok-node-2": Unschedulable: 0/4 nodes are available',
            id="a pod problem names the pod and its node"),
        pytest.param(
            {"node": None, "pod": None, "container": None, "init_container": False, "image": None,
             "reason": "FailedCreate", "message": "Error creating: exceeded quota"},
            "the DaemonSet controller: FailedCreate: Error creating: exceeded quota",
            id="a refusal names the DaemonSet controller"),
    ],
)
def test_describe_problem(problem, line):
    assert diagnosis.describe_problem(problem) == line


def test_describe_problems_is_one_per_line_and_counts_what_it_leaves_out():
    problem = {"node": "n", "pod": "p", "container": None, "image": None, "reason": "Unschedulable", "message": "m"}
    text = diagnosis.describe_problems([problem] * 5, limit=3)
    assert text.splitlines() == ['pod "p" on node "n": Unschedulable: m'] * 3 + ["... and 2 more (see 'problems' in the result)"]


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        pytest.param(["ImagePullBackOff", "ErrImagePull"], True, id="only pull failures are hopeless"),
        pytest.param(["CreateContainerConfigError"], True, id="a missing ConfigMap key is hopeless"),
        pytest.param(["ImagePullBackOff", "Unschedulable"], False, id="an unschedulable pod may yet get room"),
        pytest.param(["ImagePullBackOff", "FailedCreate"], False, id="a quota refusal may yet be lifted"),
        pytest.param(["CrashLoopBackOff"], False, id="a crash loop is not given up early"),
        pytest.param([], False, id="no problem is not hopeless"),
    ],
)
def test_hopeless(reasons, expected):
    assert diagnosis.hopeless([{"reason": reason} for reason in reasons]) is expected
