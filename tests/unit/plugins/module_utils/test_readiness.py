# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import readiness
from ansible_collections.kip.image_puller.tests.unit.plugins.module_utils._daemonset_fixtures import DELETE, obj

ALL_AVAILABLE = {"status.numberReady": 3, "status.numberAvailable": 3, "status.numberUnavailable": 0}


def rolled_out(**changes):
    return obj("daemonset", **{**ALL_AVAILABLE, **changes})


def ready_pod(node, **changes):
    return obj("ready_pod", **{"metadata.name": f"kubernetes-image-puller-{node}", "spec.nodeName": node, **changes})


THREE_READY = [ready_pod("kwok-node-0"), ready_pod("kwok-node-1"), ready_pod("kwok-node-2")]


@pytest.mark.parametrize(
    ("daemonset", "done", "waiting_for"),
    [
        pytest.param(rolled_out(), True, "3 of 3 pods updated and available", id="all updated and available is done"),
        pytest.param(rolled_out(**{"metadata.generation": 3}), False,
                     "the DaemonSet controller has not yet observed generation 3 (observed: 2)",
                     id="an observedGeneration that lags the generation is not done"),
        pytest.param(rolled_out(**{"status.observedGeneration": DELETE}), False,
                     "the DaemonSet controller has not yet observed generation 2 (observed: None)",
                     id="a fresh DaemonSet without status is not done"),
        pytest.param(rolled_out(**{"status.observedGeneration": 5}), True, "3 of 3 pods updated and available",
                     id="an observedGeneration ahead of the generation read is fine"),
        pytest.param(rolled_out(**{"status.updatedNumberScheduled": 2}), False, "2 of 3 updated pods scheduled",
                     id="pods of the old template still scheduled is not done"),
        pytest.param(rolled_out(**{"status.numberAvailable": 2}), False, "2 of 3 updated pods available",
                     id="numberAvailable below desired is not done even when all are ready (minReadySeconds)"),
        pytest.param(obj("daemonset"), False, "1 of 3 updated pods available", id="the fixture mid-rollout is not done"),
        pytest.param(rolled_out(**{"status.updatedNumberScheduled": 0, "spec.updateStrategy": {"type": "OnDelete"}}), True,
                     "3 of 3 pods updated and available", id="with OnDelete the updated count is not waited for"),
        pytest.param(
            rolled_out(**{"status.desiredNumberScheduled": 0, "status.currentNumberScheduled": 0, "status.updatedNumberScheduled": 0,
                          "status.numberReady": 0, "status.numberAvailable": 0}),
            True, "0 of 0 pods updated and available", id="zero desired pods is done at once"),
    ],
)
def test_rollout_status_is_kubectls_rule(daemonset, done, waiting_for):
    assert readiness.rollout_status(daemonset) == (done, waiting_for)
    # the first part of the rule on its own: are the status's counts the current template's?
    unobserved = waiting_for if waiting_for.startswith("the DaemonSet controller has not yet observed") else None
    assert readiness.generation_unobserved(daemonset) == unobserved


@pytest.mark.parametrize(
    ("pod", "daemonset", "updated"),
    [
        pytest.param(obj("ready_pod"), obj("daemonset"), True, id="a pod of the current template generation is updated"),
        pytest.param(obj("ready_pod", **{"metadata.labels.pod-template-generation": "1"}), obj("daemonset"), False,
                     id="a pod of an older template generation is not updated"),
        pytest.param(obj("ready_pod"), obj("daemonset", **{"metadata.generation": 7}), True,
                     id="a change outside the template (metadata.generation) leaves pods updated"),
        pytest.param(obj("ready_pod"), obj("daemonset", **{"metadata.annotations": {}}), False,
                     id="without the controller's annotation no pod counts as updated"),
    ],
)
def test_pod_is_updated(pod, daemonset, updated):
    assert readiness.pod_is_updated(pod, daemonset) is updated


@pytest.mark.parametrize(
    ("pod", "ready"),
    [
        pytest.param(obj("ready_pod"), True, id="a pod whose containers are all ready is ready"),
        pytest.param(obj("pull_failing_pod"), False, id="a pod with one container pulling in vain is not ready"),
        pytest.param(obj("ready_pod", **{"status.containerStatuses": [obj("ready_pod")["status"]["containerStatuses"][0]]}), False,
                     id="a pod missing the status of a container is not ready"),
        pytest.param(obj("unschedulable_pod"), False, id="an unscheduled pod is not ready"),
    ],
)
def test_pod_is_ready(pod, ready):
    assert readiness.pod_is_ready(pod) is ready


@pytest.mark.parametrize(
    ("daemonset", "pods", "done", "waiting_for"),
    [
        pytest.param(rolled_out(), THREE_READY, True, "3 of 3 pods updated and available",
                     id="kubectl's rule and three ready updated pods is done"),
        pytest.param(rolled_out(), THREE_READY[:2] + [obj("pull_failing_pod", **{"spec.nodeName": "kwok-node-2"})], False,
                     "1 updated pods have containers that are not ready",
                     id="a stale status does not hide a pod that is not ready"),
        pytest.param(rolled_out(), THREE_READY[:2], False, "2 of 3 updated pods exist",
                     id="a stale status does not hide a pod not yet created"),
        pytest.param(rolled_out(), THREE_READY[:2] + [ready_pod("kwok-node-2", **{"metadata.labels.pod-template-generation": "1"})],
                     False, "2 of 3 updated pods exist", id="a ready pod of the old revision does not count"),
        pytest.param(rolled_out(), THREE_READY + [obj("pull_failing_pod", **{"metadata.deletionTimestamp": "2026-03-02T10:07:00Z"})],
                     True, "3 of 3 pods updated and available", id="a terminating pod is ignored"),
        pytest.param(rolled_out(), THREE_READY + [obj("pull_failing_pod", **{"metadata.ownerReferences.0.uid": "x"})],
                     True, "3 of 3 pods updated and available", id="a failing pod that another DaemonSet owns is ignored"),
        pytest.param(rolled_out(**{"status.numberAvailable": 2}), THREE_READY, False, "2 of 3 updated pods available",
                     id="ready pods not yet available are not done"),
        pytest.param(
            rolled_out(**{"status.desiredNumberScheduled": 0, "status.currentNumberScheduled": 0, "status.updatedNumberScheduled": 0,
                          "status.numberReady": 0, "status.numberAvailable": 0}),
            [], True, "0 of 0 pods updated and available", id="a DaemonSet that selects no node is done with no pods"),
    ],
)
def test_evaluate(daemonset, pods, done, waiting_for):
    state = readiness.evaluate(daemonset, pods)
    assert (state.done, state.waiting_for) == (done, waiting_for)


def test_evaluate_summarizes_counts_images_and_nodes():
    state = readiness.evaluate(obj("daemonset"), [obj("unschedulable_pod"), obj("pull_failing_pod"), obj("ready_pod")])
    assert state.summary == {
        "desired": 3, "current": 3, "ready": 1, "updated": 3, "available": 1, "misscheduled": 0,
        "images": [{"container": "java", "image": "quay.io/example/java:17"},
                   {"container": "broken", "image": "quay.io/example/app:pull-fails"}],
        "nodes": [
            {"node": "kwok-node-0", "pod": "kubernetes-image-puller-a1b2c", "phase": "Running", "ready": True, "updated": True},
            {"node": "kwok-node-1", "pod": "kubernetes-image-puller-d3e4f", "phase": "Pending", "ready": False, "updated": True},
            {"node": "kwok-node-2", "pod": "kubernetes-image-puller-g5h6i", "phase": "Pending", "ready": False, "updated": True},
        ],
    }
    assert [p["metadata"]["name"] for p in state.not_ready_pods] == ["kubernetes-image-puller-d3e4f", "kubernetes-image-puller-g5h6i"]
    assert state.missing_pods == 0


TABLE_COLUMNS = [{"name": name} for name in ("Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates")]


def row(name, ready, status="Running", node="kwok-node-0"):
    return {"cells": [name, ready, status, 0, "1m", "10.0.0.1", node, "<none>", "<none>"]}


@pytest.mark.parametrize(
    ("rows", "done", "waiting_for"),
    [
        pytest.param([row("a", "2/2", node="n0"), row("b", "2/2", node="n1"), row("c", "2/2", node="n2")], True,
                     "3 of 3 pods updated and available", id="every updated pod with all containers ready is done"),
        pytest.param([row("a", "2/2", node="n0"), row("b", "1/2", node="n1"), row("c", "2/2", node="n2")], False,
                     "1 updated pods have containers that are not ready", id="one container not ready is not done"),
        pytest.param([row("a", "2/2", node="n0"), row("b", "2/2", "Terminating", "n1"), row("c", "2/2", node="n2")], False,
                     "2 of 3 updated pods exist", id="a terminating pod does not count"),
        pytest.param([row("a", "0/0", node="n0"), row("b", "2/2", node="n1"), row("c", "2/2", node="n2")], False,
                     "1 updated pods have containers that are not ready", id="a pod without containers is not ready"),
    ],
)
def test_confirm_from_the_pod_table(rows, done, waiting_for):
    daemonset = obj("daemonset", **{"status.numberReady": 3, "status.numberAvailable": 3})
    state = readiness.confirm(daemonset, readiness.pod_rows({"columnDefinitions": TABLE_COLUMNS, "rows": rows}))
    assert (state.done, state.waiting_for) == (done, waiting_for)


def test_pod_rows_read_the_columns_by_name_and_an_unscheduled_pod_has_no_node():
    table = {"columnDefinitions": TABLE_COLUMNS, "rows": [row("a", "3/50", "ImagePullBackOff", "<none>")]}
    assert readiness.pod_rows(table) == [{"pod": "a", "node": None, "status": "ImagePullBackOff", "ready": 3, "total": 50}]


@pytest.mark.parametrize(
    ("changes", "selector"),
    [
        pytest.param({}, "app.kubernetes.io/instance=kubernetes-image-puller,app.kubernetes.io/name=kubernetes-image-puller,"
                         "pod-template-generation=2", id="a rolling update selects the pods of the current template"),
        pytest.param({"spec.updateStrategy": {"type": "OnDelete"}},
                     "app.kubernetes.io/instance=kubernetes-image-puller,app.kubernetes.io/name=kubernetes-image-puller",
                     id="OnDelete selects every pod"),
    ],
)
def test_updated_selector(changes, selector):
    assert readiness.updated_selector(obj("daemonset", **changes)) == selector


@pytest.mark.parametrize(
    ("status", "node", "problem"),
    [
        ("Running", "n1", False),
        ("ContainerCreating", "n1", False),
        ("PodInitializing", "n1", False),
        ("Init:0/1", "n1", False),
        ("Terminating", "n1", False),
        ("Pending", "n1", False),
        ("Pending", None, True),  # no node found for it: the diagnosis says why
        ("ErrImagePull", "n1", True),
        ("ImagePullBackOff", "n1", True),
        ("Init:ImagePullBackOff", "n1", True),
        ("Init:Error", "n1", True),
        ("CrashLoopBackOff", "n1", True),
        ("CreateContainerConfigError", "n1", True),
        ("InvalidImageName", "n1", True),
        ("Evicted", "n1", True),
        ("", "n1", True),
    ],
)
def test_row_shows_problem(status, node, problem):
    assert readiness.row_shows_problem({"pod": "p", "node": node, "status": status, "ready": 0, "total": 3}) is problem


@pytest.mark.parametrize(
    ("status", "live"),
    [
        ("Running", True),
        ("Pending", True),
        ("NotReady", True),
        ("ContainerCreating", True),
        ("PodInitializing", True),
        ("Init:0/1", True),
        ("Init:12/50", True),
        ("ErrImagePull", True),
        ("ImagePullBackOff", True),
        ("Init:ImagePullBackOff", True),
        ("CrashLoopBackOff", True),
        ("Init:CrashLoopBackOff", True),
        ("CreateContainerConfigError", True),
        # what a finished pod may show: only the pod's phase tells
        ("Completed", False),
        ("Succeeded", False),
        ("Failed", False),
        ("Error", False),
        ("Init:Error", False),
        ("OOMKilled", False),
        ("ExitCode:1", False),
        ("Init:Signal:9", False),
        ("Evicted", False),
        ("OutOfcpu", False),
        ("ContainerStatusUnknown", False),
        ("Terminating", False),
        ("Unknown", False),
        ("Init:", False),
        ("", False),
    ],
)
def test_row_is_surely_live(status, live):
    assert readiness.row_is_surely_live({"pod": "p", "node": "n1", "status": status, "ready": 0, "total": 3}) is live


def revision(number, hash_, owner_uid="0b5c4e0c-1f0e-4d43-9a53-2d3b8c1f7a10"):
    return obj("controller_revision", **{"revision": number, "metadata.labels.controller-revision-hash": hash_,
                                         "metadata.ownerReferences.0.uid": owner_uid})


@pytest.mark.parametrize(
    ("revisions", "expected"),
    [
        pytest.param([], None, id="none readable"),
        pytest.param([revision(1, "first"), revision(2, "second")], "second", id="the newest"),
        pytest.param([revision(3, "first"), revision(2, "second")], "first", id="an earlier template made current again"),
        pytest.param([revision(1, "first"), revision(9, "foreign", owner_uid="another")], "first", id="another owner's is ignored"),
    ],
)
def test_current_revision_hash(revisions, expected):
    assert readiness.current_revision_hash(obj("daemonset"), revisions) == expected


def revision_table(*revisions, revision_cell=None):
    """What the API server answers for ControllerRevisions listed as a Table with includeObject=Metadata."""
    columns = [{"name": "Name"}, {"name": "Controller"}, {"name": "Revision"}, {"name": "Age"}]
    rows = [{"cells": [r["metadata"]["name"], "daemonset.apps/kip", r["revision"] if revision_cell is None else revision_cell, "1m"],
             "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": r["metadata"]}}
            for r in revisions]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "columnDefinitions": columns, "rows": rows}


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param(revision_table(), None, id="no revisions"),
        pytest.param(revision_table(revision(1, "first"), revision(2, "second")), "second", id="the newest"),
        pytest.param(revision_table(revision(3, "first"), revision(2, "second")), "first", id="an earlier template made current again"),
        pytest.param(revision_table(revision(1, "first"), revision(9, "foreign", owner_uid="another")), "first",
                     id="another owner's is ignored: the row's metadata has its owner"),
        pytest.param(revision_table(revision(1, "first"), revision_cell="7"), "first", id="a revision cell given as text"),
        pytest.param({"kind": "ControllerRevisionList", "items": [revision(1, "first"), revision(2, "second")]}, "second",
                     id="a plain list from a server without Tables"),
    ],
)
def test_current_revision_hash_from_a_table(table, expected):
    assert readiness.current_revision_hash(obj("daemonset"), readiness.revision_rows(table)) == expected


@pytest.mark.parametrize(
    ("generation", "hash_", "revision_hash", "updated"),
    [
        pytest.param("2", "6d9f7c8b5", None, True, id="this generation"),
        pytest.param("1", "old", None, False, id="an earlier generation"),
        pytest.param("1", "old", "6d9f7c8b5", False, id="an earlier generation of another template"),
        pytest.param("1", "6d9f7c8b5", "6d9f7c8b5", True, id="an earlier generation running the current template again"),
    ],
)
def test_pod_is_updated_by_generation_or_by_the_current_revision(generation, hash_, revision_hash, updated):
    pod = obj("ready_pod", **{"metadata.labels.pod-template-generation": generation, "metadata.labels.controller-revision-hash": hash_})
    assert readiness.pod_is_updated(pod, obj("daemonset"), revision_hash) is updated
