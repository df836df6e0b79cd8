# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The waiter against a scripted stand-in of api.DaemonSetApi and a fake clock: no cluster, no sleeps."""

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import rollout
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.tests.unit.plugins.module_utils._daemonset_fixtures import obj

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


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class ScriptedApi:
    """Each watch ends either with the next scripted change (one second later) or, when the script is over, by expiring."""

    ref = "DaemonSet image-puller/kubernetes-image-puller"

    def __init__(self, clock, *states):
        self.clock, self.states, self.watches = clock, list(states), []

    @property
    def current(self):
        return self.states[0]

    def get(self):
        return self.current[0]

    def list_pods(self, selector):
        assert selector == "app.kubernetes.io/instance=kubernetes-image-puller,app.kubernetes.io/name=kubernetes-image-puller"
        return self.current[1], "99"

    def list_events(self):
        return self.current[2] if len(self.current) > 2 else []

    def _watch(self, seconds):
        self.watches.append(seconds)
        if len(self.states) > 1:
            self.states.pop(0)
            self.clock.now += 1
            yield "MODIFIED", {}
        else:
            self.clock.now += seconds

    def watch_daemonset(self, resource_version, seconds):
        return self._watch(seconds)

    def watch_pods(self, selector, resource_version, seconds):
        return self._watch(seconds)


@pytest.fixture(name="clock")
def fixture_clock():
    return Clock()


def test_a_finished_rollout_returns_at_once_without_watching(clock):
    api = ScriptedApi(clock, (obj("daemonset", **DONE), ALL_READY))
    seen = rollout.wait_for_rollout(api, timeout=300, clock=clock)
    assert seen.state.done and seen.problems == [] and api.watches == []


def test_the_waiter_wakes_on_the_change_that_finishes_the_rollout(clock):
    api = ScriptedApi(clock, (MID_ROLLOUT, ALL_READY[:2]), (obj("daemonset", **DONE), ALL_READY))
    seen = rollout.wait_for_rollout(api, timeout=300, clock=clock)
    assert seen.state.done and clock.now == 1001 and api.watches == [rollout.RELIST_SECONDS]


def test_a_rollout_that_never_finishes_fails_at_the_timeout_and_lists_again_meanwhile(clock):
    api = ScriptedApi(clock, (MID_ROLLOUT, ALL_READY[:2]))
    with pytest.raises(ImagePullerError) as raised:
        rollout.wait_for_rollout(api, timeout=25, clock=clock)
    assert raised.value.msg == ("DaemonSet image-puller/kubernetes-image-puller: the rollout did not finish within 25s "
                                "(2 of 3 updated pods available):\nno pod reports an error")
    assert api.watches == [10, 10, 5] and clock.now == 1025
    assert raised.value.result["summary"]["available"] == 2


def test_a_pull_failure_on_every_pod_not_ready_fails_after_the_grace_period_with_image_node_and_reason(clock):
    api = ScriptedApi(clock, (obj("daemonset"), ONE_FAILING))
    with pytest.raises(ImagePullerError) as raised:
        rollout.wait_for_rollout(api, timeout=300, grace=30, clock=clock)
    assert clock.now == 1030, "gave up when the grace period ended, long before the timeout"
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
