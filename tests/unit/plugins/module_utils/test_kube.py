# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bottom rules: selectors, ownership, node order."""

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import kube
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError, InvalidObjectError
from ansible_collections.kip.image_puller.tests.unit.plugins.module_utils._daemonset_fixtures import DELETE, obj


@pytest.mark.parametrize(
    ("pod", "node"),
    [
        pytest.param(obj("ready_pod"), "kwok-node-0", id="a scheduled pod is on its nodeName"),
        pytest.param(obj("unschedulable_pod"), "kwok-node-2", id="an unscheduled pod is meant for the node of its matchFields"),
        pytest.param(obj("unschedulable_pod", **{"spec.affinity": DELETE}), None, id="a pod without either names no node"),
    ],
)
def test_target_node(pod, node):
    assert kube.target_node(pod) == node


@pytest.mark.parametrize(
    ("pod", "owned"),
    [
        pytest.param(obj("ready_pod"), True, id="a pod whose controller reference has the DaemonSet's uid is owned"),
        pytest.param(obj("ready_pod", **{"metadata.ownerReferences.0.uid": "another"}), False,
                     id="a pod of an earlier DaemonSet of the same name is not owned"),
        pytest.param(obj("ready_pod", **{"metadata.ownerReferences.0.controller": False}), False,
                     id="a reference that is not the controller does not own"),
        pytest.param(obj("ready_pod", **{"metadata.ownerReferences": DELETE}), False, id="an orphan pod is not owned"),
    ],
)
def test_owned_by(pod, owned):
    assert kube.owned_by(pod, obj("daemonset")) is owned


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2", id="matchLabels become sorted equalities"),
        pytest.param({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "cache"]},
                                           {"key": "env", "operator": "NotIn", "values": ["dev"]},
                                           {"key": "gpu", "operator": "Exists"},
                                           {"key": "old", "operator": "DoesNotExist"}]},
                     "tier in (cache,web),env notin (dev),gpu,!old", id="matchExpressions use set-based syntax"),
        pytest.param(None, "", id="no selector selects everything"),
    ],
)
def test_selector_string(selector, expected):
    assert kube.selector_string(selector) == expected


def test_selector_string_rejects_an_unknown_operator():
    with pytest.raises(InvalidObjectError, match="operator 'Near'"):
        kube.selector_string({"matchExpressions": [{"key": "a", "operator": "Near"}]})


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        pytest.param({}, {"a": "b"}, True, id="an empty label selector selects everything"),
        pytest.param(None, {"a": "b"}, False, id="a missing label selector selects nothing"),
        pytest.param({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]}]}, {}, True,
                     id="NotIn selects objects without the label"),
        pytest.param({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "b"}, False,
                     id="DoesNotExist rejects objects with the label"),
    ],
)
def test_selector_matches(selector, labels, matches):
    assert kube.selector_matches(selector, labels) is matches


@pytest.mark.parametrize(
    ("requirement", "labels", "matches"),
    [
        pytest.param({"key": "gen", "operator": "Gt", "values": ["3"]}, {"gen": "4"}, True, id="Gt compares integers"),
        pytest.param({"key": "gen", "operator": "Lt", "values": ["3"]}, {"gen": "x"}, False, id="Gt and Lt never match a non-integer"),
        pytest.param({"key": "gen", "operator": "Gt", "values": ["3", "4"]}, {"gen": "9"}, False, id="Gt with two values matches nothing"),
        pytest.param({"key": "a", "operator": "In", "values": ["b"]}, {}, False, id="In needs the label"),
    ],
)
def test_requirement_matches(requirement, labels, matches):
    assert kube.requirement_matches(requirement, labels) is matches


@pytest.mark.parametrize("call", [
    pytest.param(lambda: kube.selector_string({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}), id="to a string"),
    pytest.param(lambda: kube.selector_matches({"matchExpressions": [{"key": "a", "operator": "Near"}]}, {}), id="matching labels"),
    pytest.param(lambda: kube.requirement_matches({"key": "a", "operator": "Near"}, {}), id="matching a node"),
])
def test_an_unknown_operator_is_a_module_failure_not_a_value_error(call):
    """Gt is a node selector operator only: a label selector with it is as wrong as an unknown one."""
    with pytest.raises(ImagePullerError, match="is not one of") as raised:
        call()
    assert not isinstance(raised.value, ValueError)


def test_owned_pods_drops_strangers_and_terminating_pods_and_sorts_by_node():
    daemonset = obj("daemonset")
    pods = [
        obj("ready_pod", **{"metadata.name": "p-b", "spec.nodeName": "node-b"}),
        obj("ready_pod", **{"metadata.name": "p-a", "spec.nodeName": "node-a"}),
        obj("ready_pod", **{"metadata.name": "p-gone", "spec.nodeName": "node-0", "metadata.deletionTimestamp": "2026-01-01T00:00:00Z"}),
        obj("ready_pod", **{"metadata.name": "p-other", "spec.nodeName": "node-0", "metadata.ownerReferences.0.uid": "another"}),
    ]
    assert [kube.name_of(pod) for pod in kube.owned_pods(pods, daemonset)] == ["p-a", "p-b"]


@pytest.mark.parametrize(("text", "iso"), [
    ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00"),
    ("2026-01-02T03:04:05", "2026-01-02T03:04:05+00:00"),
    ("yesterday", None),
    (None, None),
])
def test_parse_time(text, iso):
    parsed = kube.parse_time(text)
    assert (parsed.isoformat() if parsed else None) == iso
