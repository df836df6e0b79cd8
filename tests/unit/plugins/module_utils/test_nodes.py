# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import InvalidObjectError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.nodes import NodeInfo, exclusion_reason, place, tolerates


def node(name="kwok-node-0", labels=None, taints=()):
    return NodeInfo.from_node({
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": [dict(zip(("key", "value", "effect"), t)) for t in taints]},
    })


def affinity(*terms):
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}}


def expr(key, operator, *values):
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {})}


LINUX = {"kubernetes.io/os": "linux", "zone": "a", "cores": "8"}
GPU_TAINT = ("dedicated", "gpu", "NoSchedule")


@pytest.mark.parametrize(
    ("spec", "the_node", "reason"),
    [
        pytest.param({}, node(), None, id="a plain pod runs on a plain node"),
        pytest.param({"nodeSelector": {"kubernetes.io/os": "linux"}}, node(labels=LINUX), None, id="a matching nodeSelector admits the node"),
        pytest.param({"nodeSelector": {"kubernetes.io/os": "windows"}}, node(labels=LINUX), "not matching nodeSelector kubernetes.io/os=windows",
                     id="a nodeSelector with another value excludes the node"),
        pytest.param({"nodeSelector": {"disk": "ssd"}}, node(labels=LINUX), "not matching nodeSelector disk=ssd",
                     id="a nodeSelector on a missing label excludes the node"),
        pytest.param(affinity({"matchExpressions": [expr("zone", "In", "a", "b")]}), node(labels=LINUX), None, id="affinity In with the value admits"),
        pytest.param(affinity({"matchExpressions": [expr("zone", "In", "b")]}), node(labels=LINUX), "not matching required node affinity",
                     id="affinity In without the value excludes"),
        pytest.param(affinity({"matchExpressions": [expr("zone", "NotIn", "b")]}), node(labels=LINUX), None, id="affinity NotIn another value admits"),
        pytest.param(affinity({"matchExpressions": [expr("rack", "NotIn", "r1")]}), node(labels=LINUX), None,
                     id="affinity NotIn admits a node without the label"),
        pytest.param(affinity({"matchExpressions": [expr("zone", "NotIn", "a")]}), node(labels=LINUX), "not matching required node affinity",
                     id="affinity NotIn its value excludes"),
        pytest.param(affinity({"matchExpressions": [expr("zone", "Exists")]}), node(labels=LINUX), None, id="affinity Exists admits a labelled node"),
        pytest.param(affinity({"matchExpressions": [expr("gpu", "Exists")]}), node(labels=LINUX), "not matching required node affinity",
                     id="affinity Exists excludes an unlabelled node"),
        pytest.param(affinity({"matchExpressions": [expr("gpu", "DoesNotExist")]}), node(labels=LINUX), None,
                     id="affinity DoesNotExist admits an unlabelled node"),
        pytest.param(affinity({"matchExpressions": [expr("cores", "Gt", "4")]}), node(labels=LINUX), None, id="affinity Gt 4 admits 8 cores"),
        pytest.param(affinity({"matchExpressions": [expr("cores", "Gt", "8")]}), node(labels=LINUX), "not matching required node affinity",
                     id="affinity Gt is strict"),
        pytest.param(affinity({"matchExpressions": [expr("cores", "Lt", "16")]}), node(labels=LINUX), None, id="affinity Lt 16 admits 8 cores"),
        pytest.param(affinity({"matchExpressions": [expr("zone", "Lt", "16")]}), node(labels=LINUX), "not matching required node affinity",
                     id="affinity Lt on a non-numeric label excludes"),
        pytest.param(affinity({"matchExpressions": [expr("zone", "In", "z")]}, {"matchExpressions": [expr("zone", "In", "a")]}), node(labels=LINUX), None,
                     id="node selector terms are ORed"),
        pytest.param(affinity({"matchExpressions": [expr("zone", "In", "a"), expr("cores", "Gt", "10")]}), node(labels=LINUX),
                     "not matching required node affinity", id="expressions within a term are ANDed"),
        pytest.param(affinity({"matchFields": [expr("metadata.name", "In", "kwok-node-0")]}), node(), None, id="matchFields metadata.name admits that node"),
        pytest.param(affinity({"matchFields": [expr("metadata.name", "NotIn", "kwok-node-0")]}), node(), "not matching required node affinity",
                     id="matchFields metadata.name NotIn excludes that node"),
        pytest.param(affinity({}), node(), "not matching required node affinity", id="an empty node selector term matches no node"),
        pytest.param({"nodeName": "other"}, node(), "spec.nodeName is other", id="a nodeName in the template pins the pod elsewhere"),
    ],
)
def test_selector_and_affinity(spec, the_node, reason):
    assert exclusion_reason(spec, the_node) == reason


@pytest.mark.parametrize(
    ("tolerations", "taint", "reason"),
    [
        pytest.param([], GPU_TAINT, "with untolerated taint dedicated=gpu:NoSchedule", id="an untolerated NoSchedule taint excludes"),
        pytest.param([], ("dedicated", "gpu", "NoExecute"), "with untolerated taint dedicated=gpu:NoExecute", id="an untolerated NoExecute taint excludes"),
        pytest.param([], ("dedicated", "gpu", "PreferNoSchedule"), None, id="PreferNoSchedule does not keep a DaemonSet away"),
        pytest.param([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}], GPU_TAINT, None,
                     id="an Equal toleration with the value tolerates"),
        pytest.param([{"key": "dedicated", "value": "gpu"}], GPU_TAINT, None, id="the operator defaults to Equal and no effect means any effect"),
        pytest.param([{"key": "dedicated", "operator": "Equal", "value": "cpu"}], GPU_TAINT, "with untolerated taint dedicated=gpu:NoSchedule",
                     id="an Equal toleration with another value does not tolerate"),
        pytest.param([{"key": "dedicated", "operator": "Exists"}], GPU_TAINT, None, id="an Exists toleration ignores the value"),
        pytest.param([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}], GPU_TAINT, "with untolerated taint dedicated=gpu:NoSchedule",
                     id="a toleration for another effect does not tolerate"),
        pytest.param([{"operator": "Exists"}], GPU_TAINT, None, id="an empty key with Exists tolerates every taint"),
        pytest.param([{"operator": "Equal", "value": "gpu"}], GPU_TAINT, "with untolerated taint dedicated=gpu:NoSchedule",
                     id="an empty key with Equal tolerates nothing"),
        pytest.param([], ("node.kubernetes.io/unschedulable", "", "NoSchedule"), None, id="DaemonSet pods tolerate a cordoned node"),
        pytest.param([], ("node.kubernetes.io/not-ready", "", "NoExecute"), None, id="DaemonSet pods tolerate a not-ready node"),
        pytest.param([], ("node.kubernetes.io/unreachable", "", "NoExecute"), None, id="DaemonSet pods tolerate an unreachable node"),
        pytest.param([], ("node.kubernetes.io/disk-pressure", "", "NoSchedule"), None, id="DaemonSet pods tolerate disk pressure"),
        pytest.param([], ("node.kubernetes.io/memory-pressure", "", "NoSchedule"), None, id="DaemonSet pods tolerate memory pressure"),
        pytest.param([], ("node.kubernetes.io/pid-pressure", "", "NoSchedule"), None, id="DaemonSet pods tolerate pid pressure"),
        pytest.param([], ("node.kubernetes.io/network-unavailable", "", "NoSchedule"),
                     "with untolerated taint node.kubernetes.io/network-unavailable:NoSchedule",
                     id="pods on the pod network do not tolerate network-unavailable"),
        pytest.param([], ("node.kubernetes.io/not-ready", "", "NoSchedule"), "with untolerated taint node.kubernetes.io/not-ready:NoSchedule",
                     id="the automatic not-ready toleration covers NoExecute only"),
    ],
)
def test_taints_and_tolerations(tolerations, taint, reason):
    assert exclusion_reason({"tolerations": tolerations}, node(taints=[taint])) == reason


def test_host_network_pods_tolerate_network_unavailable():
    taint = ("node.kubernetes.io/network-unavailable", "", "NoSchedule")
    assert exclusion_reason({"hostNetwork": True}, node(taints=[taint])) is None


def test_tolerates_matches_one_taint():
    assert tolerates({"key": "a", "operator": "Exists", "effect": "NoSchedule"}, "a", "x", "NoSchedule")


def test_place_counts_the_default_local_cluster():
    nodes = [node(f"kwok-node-{i}", labels={"type": "kwok"}) for i in range(3)]
    nodes.append(node("kwok-gpu-0", labels={"node-role.kubernetes.io/gpu": ""}, taints=[GPU_TAINT]))
    placement = place({}, nodes)
    assert placement.eligible == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]
    assert placement.excluded == {"with untolerated taint dedicated=gpu:NoSchedule": 1}
    assert placement.summary() == "3 of 4 nodes eligible (excluded: 1 with untolerated taint dedicated=gpu:NoSchedule)"


def test_place_reads_node_dicts_and_keeps_only_what_it_needs():
    raw = {"metadata": {"name": "n1", "labels": {"a": "b"}, "annotations": {"big": "x" * 1000}},
           "spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}, "status": {"images": [{"names": ["img"]}]}}
    assert NodeInfo.from_node(raw) == NodeInfo(name="n1", labels=(("a", "b"),), taints=(("k", "", "PreferNoSchedule"),))
    assert place({"nodeSelector": {"a": "b"}}, [raw]).eligible == ["n1"]


def test_an_unknown_operator_is_an_error_naming_it():
    with pytest.raises(InvalidObjectError, match="'Near'"):
        exclusion_reason(affinity({"matchExpressions": [expr("zone", "Near", "a")]}), node(labels=LINUX))
