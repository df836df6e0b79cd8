# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The waiter against a scripted stand-in of api.DaemonSetApi and a fake clock: no cluster, no sleeps."""

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import retry, rollout
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.tests.unit.plugins.module_utils._daemonset_fixtures import DELETE, obj

DONE = {"status.numberReady": 3, "status.numberAvailable": 3}


def ready_pod(node):
    return obj("ready_pod", **{"metadata.name": f"kubernetes-image-puller-{node}", "spec.nodeName": node})


def failing_pod(node):
    return obj("pull_failing_pod", **{"metadata.name": f"kubernetes-image-puller-{node}", "spec.nodeName": node})


ALL_READY = [ready_pod("kwok-node-0"), ready_pod("kwok-node-1"), ready_pod("kwok-node-2")]
ONE_FAILING = [ready_pod("kwok-node-0"), failing_pod("kwok-node-1"), ready_pod("kwok-node-2")]
STALLED_UPDATE = [ready_pod("kwok-node-0"), failing_pod("kwok-node-1"),
                  obj("ready_pod", **{"metadata.name": "old", "spec.nodeName": "kwok-node-2", "metadata.labels.pod-template-generation": "1"})]
STILL_CREATING = obj("pull_failing_pod", **{
    "spec.nodeName": "kwok-node-2", "status.containerStatuses.1.state": {"waiting": {"reason": "ContainerCreating"}}})
MID_ROLLOUT = obj("daemonset", **{"status.numberReady": 2, "status.numberAvailable": 2})


def pending_pod(name, *, refused=False):
    """A pod the controller made that has no node yet; refused: the scheduler found none (Unschedulable)."""
    conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                   "message": "0/3 nodes are available: 3 Insufficient memory."}] if refused else []
    return obj("ready_pod", **{"metadata.name": name, "spec.nodeName": DELETE, "status.phase": "Pending",
                               "status.containerStatuses": DELETE, "status.conditions": conditions})


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


SELECTOR = "app.kubernetes.io/instance=kubernetes-image-puller,app.kubernetes.io/name=kubernetes-image-puller"


def status_column(pod):
    """kubectl's STATUS: the phase, unless a container waits for a reason (the first container's, as kubectl walks them backwards)."""
    status = pod["status"].get("phase")
    for container in reversed((pod.get("status") or {}).get("containerStatuses") or []):
        status = ((container.get("state") or {}).get("waiting") or {}).get("reason") or status
    return status


def table_of(pods):
    """The server-side Table the API server renders for these pods (the columns kubectl prints)."""
    columns = [{"name": name} for name in ("Name", "Ready", "Status", "Restarts", "Age", "IP", "Node")]
    rows = []
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        ready = sum(1 for status in statuses if status.get("ready"))
        total = len(pod["spec"]["containers"])
        rows.append({"cells": [pod["metadata"]["name"], f"{ready}/{total}", status_column(pod), 0, "1m", "", pod["spec"].get("nodeName")]})
    return {"kind": "Table", "columnDefinitions": columns, "rows": rows}


class ScriptedApi:
    """Each watch ends either with the next scripted DaemonSet (one second later) or, when the script is over, by expiring.

    Counts what the waiter reads: full pod listings (the diagnosis) and pod tables (the confirmation).
    """

    ref = "DaemonSet image-puller/kubernetes-image-puller"

    def __init__(self, clock, *states):
        self.clock, self.states, self.watches = clock, list(states), []
        self.listings, self.tables, self.gets, self.hash_reads, self.pod_reads = 0, 0, 0, 0, 0
        self.current_hash = None

    @property
    def current(self):
        return self.states[0]

    def get(self):
        self.gets += 1
        return self.current[0]

    def get_pod(self, name):
        self.pod_reads += 1
        return next((pod for pod in self.current[1] if pod["metadata"]["name"] == name), None)

    def list_pods(self, selector):
        assert selector == SELECTOR
        self.listings += 1
        return self.current[1], "99"

    def pod_table(self, selector):
        self.tables += 1
        generation = self.current[0]["metadata"]["annotations"]["deprecated.daemonset.template.generation"]
        if selector == f"{SELECTOR},pod-template-generation={generation}":
            return table_of([pod for pod in self.current[1] if pod["metadata"]["labels"].get("pod-template-generation") == generation])
        assert selector == SELECTOR + ",controller-revision-hash=" + self.current_hash
        return table_of([pod for pod in self.current[1] if pod["metadata"]["labels"].get("controller-revision-hash") == self.current_hash])

    def revision_hash(self, daemonset):
        self.hash_reads += 1
        return self.current_hash

    def list_events(self):
        return self.current[2] if len(self.current) > 2 else []

    def _watch(self, seconds):
        self.watches.append(seconds)
        if len(self.states) > 1:
            self.states.pop(0)
            self.clock.now += 1
            if self.current[0] is None:
                yield "DELETED", {}
            else:
                yield "MODIFIED", self.current[0]
        else:
            self.clock.now += seconds

    def watch_daemonset(self, resource_version, seconds):
        return self._watch(seconds)

    def watch_pods(self, selector, resource_version, seconds):
        return self._watch(seconds)


@pytest.fixture(name="clock")
def fixture_clock():
    return Clock()


def test_a_finished_rollout_is_confirmed_from_the_pod_table_without_watching_or_listing_pods(clock):
    api = ScriptedApi(clock, (obj("daemonset", **DONE), ALL_READY))
    seen = rollout.wait_for_rollout(api, timeout=300, clock=clock)
    assert seen.state.done and seen.problems == [] and api.watches == []
    assert (api.tables, api.listings) == (1, 0)
    assert [(node["node"], node["ready"], node["phase"]) for node in seen.state.summary["nodes"]] == [
        ("kwok-node-0", True, "Running"), ("kwok-node-1", True, "Running"), ("kwok-node-2", True, "Running")]


def test_the_waiter_wakes_on_the_change_that_finishes_the_rollout(clock):
    api = ScriptedApi(clock, (MID_ROLLOUT, ALL_READY[:2]), (obj("daemonset", **DONE), ALL_READY))
    seen = rollout.wait_for_rollout(api, timeout=300, clock=clock)
    assert seen.state.done and clock.now == 1001 and api.watches == [rollout.STALL_SECONDS]
    assert (api.tables, api.listings) == (1, 0), "a moving rollout reads no pod until its status says done"


def test_status_changes_are_followed_inside_one_watch_without_reading_pods(clock):
    steps = [obj("daemonset", **{"status.numberReady": n, "status.numberAvailable": n}) for n in (0, 1, 2)]
    api = ScriptedApi(clock, *[(step, ALL_READY[:2]) for step in steps], (obj("daemonset", **DONE), ALL_READY))
    assert rollout.wait_for_rollout(api, timeout=300, clock=clock).state.done
    assert (api.tables, api.listings) == (1, 0)


def test_a_long_moving_rollout_is_followed_from_its_watches_without_reading_the_daemonset_again(clock):
    # stands still for 6 s (one diagnosis), then moves every second for 60 s: the next diagnosis is overdue, but the
    # status keeps moving, so it never comes, and each watch runs for the stall period, not for a second
    still = [(MID_ROLLOUT, ALL_READY[:2])] * 6
    moving = [(obj("daemonset", **{"status.numberReady": 1 + n % 2, "status.numberAvailable": 2}), ALL_READY[:2]) for n in range(60)]
    api = ScriptedApi(clock, *still, *moving, (obj("daemonset", **DONE), ALL_READY))
    assert rollout.wait_for_rollout(api, timeout=300, clock=clock).state.done
    assert api.gets == 1, "read once before the first watch; after that each watch's last change is the DaemonSet as it is"
    assert (api.tables, api.listings) == (2, 0), "one diagnosis from the table when it stood still, and the confirmation"
    assert min(api.watches[6:]) == rollout.STALL_SECONDS


def test_a_watch_that_delivers_nothing_is_followed_by_reading_the_daemonset_again(clock):
    api = ScriptedApi(clock, (MID_ROLLOUT, ALL_READY[:2]))
    with pytest.raises(ImagePullerError):
        rollout.wait_for_rollout(api, timeout=25, clock=clock)
    assert api.gets == 1 + len(api.watches), "a quiet, broken or too-old watch ends without a change: the DaemonSet is read again"


@pytest.mark.parametrize(
    ("moved", "diagnosed", "every", "hopeless", "remaining", "expected"),
    [
        pytest.param(0, None, 10, None, 300, 5, id="a fresh change: a diagnosis is due once the status has stood still for 5 s"),
        pytest.param(-3, None, 10, None, 300, 2, id="standing still for 3 s: 2 s to go"),
        pytest.param(-9, None, 10, None, 300, 1, id="a diagnosis overdue: one second at the least"),
        pytest.param(-1, -30, 20, None, 300, 4, id="a diagnosis overdue by its pause, while the status moves: the stall decides"),
        pytest.param(-10, -5, 20, None, 300, 10, id="standing still, the next diagnosis 15 s away: the watch is read again after 10 s"),
        pytest.param(-10, -5, 10, None, 300, 5, id="standing still, the next diagnosis 5 s away"),
        pytest.param(-10, -2, 10, -58, 300, 2, id="the grace period of a hopeless rollout ends first"),
        pytest.param(0, None, 10, None, 3, 3, id="the timeout comes first"),
    ],
)
def test_the_next_look_comes_when_something_can_be_due(clock, moved, diagnosed, every, hopeless, remaining, expected):
    waiter = rollout._Waiter(None, timeout=remaining, since=None, grace=60, clock=clock)  # pylint: disable=protected-access
    waiter.moved_at = clock.now + moved
    waiter.diagnosed_at = None if diagnosed is None else clock.now + diagnosed
    waiter.diagnosis_every = every
    waiter.hopeless_since = None if hopeless is None else clock.now + hopeless
    assert waiter.next_look(clock.now) == expected


def test_a_rollout_that_never_finishes_fails_at_the_timeout_and_diagnoses_while_it_stands_still(clock):
    api = ScriptedApi(clock, (MID_ROLLOUT, ALL_READY[:2]))
    with pytest.raises(ImagePullerError) as raised:
        rollout.wait_for_rollout(api, timeout=25, clock=clock)
    assert raised.value.msg == ("DaemonSet image-puller/kubernetes-image-puller: the rollout did not finish within 25s "
                                "(2 of 3 updated pods available):\nno pod reports an error")
    assert api.watches == [5, 10, 10] and clock.now == 1025
    assert (api.tables, api.listings) == (1, 1), (
        "diagnosed from the table when the status stood still (no row shows a problem), then in full at the timeout")
    assert raised.value.result["summary"]["available"] == 2


def test_a_pull_failure_on_every_pod_not_ready_fails_after_the_grace_period_with_image_node_and_reason(clock):
    api = ScriptedApi(clock, (obj("daemonset"), ONE_FAILING))
    with pytest.raises(ImagePullerError) as raised:
        rollout.wait_for_rollout(api, timeout=300, grace=30, clock=clock)
    assert clock.now == 1035, "gave up when the grace period after the first diagnosis ended, long before the timeout"
    assert raised.value.msg.splitlines()[1] == (
        'image "quay.io/example/app:pull-fails" (container "broken") on node "kwok-node-1": ImagePullBackOff: '
        'Back-off pulling image "quay.io/example/app:pull-fails"')
    assert [(p["node"], p["reason"]) for p in raised.value.result["problems"]] == [("kwok-node-1", "ImagePullBackOff")]


def test_a_pull_failure_that_clears_within_the_grace_period_is_waited_out(clock):
    api = ScriptedApi(clock, (obj("daemonset"), ONE_FAILING), (MID_ROLLOUT, ALL_READY), (obj("daemonset", **DONE), ALL_READY))
    assert rollout.wait_for_rollout(api, timeout=300, grace=30, clock=clock).state.done


def test_a_pull_failure_is_not_hopeless_while_the_controller_is_refused_pods(clock):
    api = ScriptedApi(clock, (obj("daemonset"), ONE_FAILING[:2], [obj("failed_create_event")]))
    with pytest.raises(ImagePullerError) as raised:
        rollout.wait_for_rollout(api, timeout=90, grace=30, clock=clock)
    assert clock.now == 1090, "waited for the whole timeout"
    assert [p["reason"] for p in raised.value.result["problems"]] == ["ImagePullBackOff", "FailedCreate"]
    assert "exceeded quota" in raised.value.msg


def test_the_api_server_going_away_for_longer_than_the_wait_fails_with_what_was_last_seen(clock):
    class Gone(ScriptedApi):
        def get(self):
            if self.gets:
                raise retry.Unreachable("DaemonSet image-puller/kubernetes-image-puller: could not read it: the API server could not be "
                                        "reached since 14:00:12 UTC (20s, until the timeout ran out); last error: connection refused",
                                        unreachable_since="14:00:12 UTC")
            return super().get()

    api = Gone(clock, (MID_ROLLOUT, ALL_READY[:2]))
    with pytest.raises(ImagePullerError) as raised:
        rollout.wait_for_rollout(api, timeout=300, clock=clock)
    assert raised.value.msg.endswith("last error: connection refused\nlast seen: 2 of 3 updated pods available")
    assert raised.value.result["unreachable_since"] == "14:00:12 UTC"
    assert raised.value.result["summary"]["available"] == 2


@pytest.mark.parametrize(
    ("pods", "hopeless"),
    [
        pytest.param(ONE_FAILING, True, id="every pod not ready failing to pull is hopeless"),
        pytest.param(STALLED_UPDATE, True, id="an update stalled on a new pod that cannot pull is hopeless"),
        pytest.param(ONE_FAILING[:2] + [obj("unschedulable_pod")], False, id="an unschedulable pod may still get room"),
        pytest.param(ONE_FAILING[:2] + [STILL_CREATING], False, id="a pod still creating its containers may yet succeed"),
        pytest.param(ALL_READY, False, id="all pods ready is not hopeless"),
    ],
)
def test_is_hopeless(clock, pods, hopeless):
    seen = rollout.observe(ScriptedApi(clock, (obj("daemonset", **{"status.updatedNumberScheduled": 2}), pods)))[0]
    assert rollout.is_hopeless(seen) is hopeless


def test_a_daemonset_deleted_during_the_wait_fails_the_wait(clock):
    api = ScriptedApi(clock, (MID_ROLLOUT, ALL_READY[:2]), (None, []))
    with pytest.raises(ImagePullerError, match="was deleted while waiting for its rollout"):
        rollout.wait_for_rollout(api, timeout=300, clock=clock)


UID = "0b5c4e0c-1f0e-4d43-9a53-2d3b8c1f7a10"
SELECTOR = "app.kubernetes.io/instance=kubernetes-image-puller,app.kubernetes.io/name=kubernetes-image-puller"


def test_deletion_waits_for_the_daemonset_then_its_pods(clock):
    terminating = obj("daemonset", **{"metadata.deletionTimestamp": "2026-03-02T10:08:00Z"})
    api = ScriptedApi(clock, (terminating, ALL_READY), (None, ALL_READY[:1]), (None, []))
    rollout.wait_for_deletion(api, uid=UID, selector=SELECTOR, timeout=60, clock=clock)
    assert clock.now == 1002


def test_deletion_ignores_a_new_daemonset_of_the_same_name_and_foreign_pods(clock):
    recreated = obj("daemonset", **{"metadata.uid": "new"})
    foreign = obj("ready_pod", **{"metadata.ownerReferences.0.uid": "new"})
    rollout.wait_for_deletion(ScriptedApi(clock, (recreated, [foreign])), uid=UID, selector=SELECTOR, timeout=60, clock=clock)
    assert clock.now == 1000


def test_deletion_that_leaves_pods_behind_fails_at_the_timeout_naming_them(clock):
    api = ScriptedApi(clock, (None, ALL_READY[:1]))
    with pytest.raises(ImagePullerError, match=r"after 30s still waiting for 1 pods \(kubernetes-image-puller-kwok-node-0\) to go"):
        rollout.wait_for_deletion(api, uid=UID, selector=SELECTOR, timeout=30, clock=clock)


def test_a_template_replaced_by_another_writer_ends_the_wait_without_claiming_its_rollout(clock):
    applied = obj("daemonset")
    theirs = obj("daemonset", **{"metadata.generation": 3, "spec.template.spec.containers.0.image": "quay.io/example/java:21"})
    api = ScriptedApi(clock, (MID_ROLLOUT, ALL_READY[:2]), (theirs, ALL_READY))
    with pytest.raises(ImagePullerError) as raised:
        rollout.wait_for_rollout(api, timeout=300, clock=clock, applied=applied)
    assert raised.value.msg == (
        "DaemonSet image-puller/kubernetes-image-puller: another writer changed its pod template while waiting (generation 3); "
        "it now runs [java=quay.io/example/java:21, broken=quay.io/example/app:pull-fails], this task applied "
        "[java=quay.io/example/java:17, broken=quay.io/example/app:pull-fails]; this wait ends without a verdict on what it applied")
    assert api.gets == 0, "the wait starts from the DaemonSet as the apply returned it, and follows the watch from there"


def test_a_newer_generation_with_the_same_template_is_still_ours(clock):
    api = ScriptedApi(clock, (obj("daemonset", **{**DONE, "metadata.generation": 3, "status.observedGeneration": 3}), ALL_READY))
    assert rollout.wait_for_rollout(api, timeout=300, clock=clock, applied=obj("daemonset")).state.done


@pytest.mark.parametrize(
    ("state", "tables", "listings", "done", "problems"),
    [
        pytest.param((obj("daemonset", **DONE), ALL_READY), 1, 0, True, 0, id="a finished rollout is confirmed from the table alone"),
        pytest.param((MID_ROLLOUT, ALL_READY[:2]), 1, 0, False, 0, id="an unfinished one without a problem: the table alone"),
        pytest.param((MID_ROLLOUT, ONE_FAILING), 1, 1, False, 1, id="a row that shows a pull failure: the pods in full, for the diagnosis"),
        pytest.param((MID_ROLLOUT, ALL_READY[:2] + [pending_pod("kubernetes-image-puller-x")]), 1, 0, False, 0,
                     id="a pod the scheduler has not got to: read alone, no listing"),
        pytest.param((MID_ROLLOUT, ALL_READY[:2] + [pending_pod("kubernetes-image-puller-x", refused=True)]), 1, 1, False, 1,
                     id="a pod the scheduler refused: the pods in full"),
    ],
)
def test_look_without_waiting_reads_pods_in_full_only_for_a_problem_to_explain(clock, state, tables, listings, done, problems):
    api = ScriptedApi(clock, state)
    seen = rollout.look(api)
    assert (api.tables, api.listings) == (tables, listings)
    assert seen.state.done is done
    assert len(seen.problems) == problems


def test_diagnoses_of_a_slow_healthy_rollout_come_less_and_less_often(clock):
    api = ScriptedApi(clock, (MID_ROLLOUT, ALL_READY[:2]))
    with pytest.raises(ImagePullerError):
        rollout.wait_for_rollout(api, timeout=200, clock=clock)
    # stalled at 5 s, then no problem found: 20, 40, 60, 60 s apart from the pod table, and in full once at the timeout
    assert (api.tables, api.listings) == (5, 1)


def test_diagnoses_stay_frequent_while_pods_report_problems(clock):
    api = ScriptedApi(clock, (obj("daemonset"), ONE_FAILING))
    with pytest.raises(ImagePullerError):
        rollout.wait_for_rollout(api, timeout=300, grace=30, clock=clock)
    assert api.listings == 4, "at 5, 15, 25 and 35 s: every RELIST_SECONDS while a pull fails"
    assert api.tables == 4, "each diagnosis looked at the table first, and its ImagePullBackOff row led to the full listing"


def test_a_pod_still_pulling_is_diagnosed_from_the_table_alone(clock):
    api = ScriptedApi(clock, (MID_ROLLOUT, [ready_pod("kwok-node-0"), ready_pod("kwok-node-1"), STILL_CREATING]))
    with pytest.raises(ImagePullerError):
        rollout.wait_for_rollout(api, timeout=30, clock=clock)
    assert (api.tables, api.listings) == (2, 1), "ContainerCreating is progress: the pods were read in full only at the timeout"


@pytest.mark.parametrize(
    ("waiting", "listings", "pod_reads", "reason"),
    [
        pytest.param([pending_pod("new-0")], 1, 2, None,
                     id="a pod the scheduler has not got to: read alone, each diagnosis; in full only at the timeout"),
        pytest.param([pending_pod(f"new-{i:02d}") for i in range(30)], 1, 2 * rollout.SCHEDULING_READS, None,
                     id="30 such pods: a sample of them read, not the whole list"),
        pytest.param([pending_pod("new-0", refused=True)], 4, 3, "Unschedulable",
                     id="one the scheduler refused: the pods read in full every RELIST_SECONDS, the reason reported"),
        pytest.param([pending_pod("new-0"), failing_pod("kwok-node-2")], 4, 0, "ImagePullBackOff",
                     id="beside a pull failure: the pods read in full at once, every RELIST_SECONDS"),
    ],
)
def test_pods_without_a_node_are_read_alone_unless_the_scheduler_refused_one(clock, waiting, listings, pod_reads, reason):
    api = ScriptedApi(clock, (MID_ROLLOUT, [ready_pod("kwok-node-0"), ready_pod("kwok-node-1"), *waiting]))
    with pytest.raises(ImagePullerError) as raised:
        rollout.wait_for_rollout(api, timeout=30, clock=clock)
    assert (api.listings, api.pod_reads) == (listings, pod_reads)
    assert [problem["reason"] for problem in raised.value.result["problems"]][:1] == ([reason] if reason else [])


def test_a_template_back_to_an_earlier_one_is_done_with_the_pods_the_controller_kept(clock):
    # generation 3 runs the template of generation 1 again: the controller kept the two pods still running it
    # (their hash is the current revision's) and replaced only the one of generation 2
    reverted = obj("daemonset", **DONE)
    reverted["metadata"]["annotations"]["deprecated.daemonset.template.generation"] = "3"
    kept = [obj("ready_pod", **{"metadata.name": f"kept-{node}", "spec.nodeName": node, "metadata.labels.pod-template-generation": "1",
                                "metadata.labels.controller-revision-hash": "first"}) for node in ("kwok-node-0", "kwok-node-1")]
    new = obj("ready_pod", **{"metadata.name": "new", "spec.nodeName": "kwok-node-2", "metadata.labels.pod-template-generation": "3",
                              "metadata.labels.controller-revision-hash": "first"})
    api = ScriptedApi(clock, (reverted, [*kept, new]))
    api.current_hash = "first"
    seen = rollout.wait_for_rollout(api, timeout=300, clock=clock)
    assert seen.state.done and api.watches == [] and api.listings == 0
    assert (api.tables, api.hash_reads) == (2, 1), "by generation (1 pod of 3), then by the current revision's hash (all 3)"
    assert [node["pod"] for node in seen.state.summary["nodes"]] == ["kept-kwok-node-0", "kept-kwok-node-1", "new"]
