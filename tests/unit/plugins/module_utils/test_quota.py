# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quota import (
    CLUSTER_QUOTA_API_MISSING,
    PodTally,
    QuotaSource,
    check_daemonset,
    cluster_quota_selects,
    failure_message,
)

NS = "k8s-image-puller"
UPSTREAM = {"requests": {"cpu": ".05", "memory": "10Mi"}, "limits": {"cpu": ".2", "memory": "20Mi"}}


def daemonset(images=5, resources=None, **pod_spec):
    resources = UPSTREAM if resources is None else resources
    containers = [{"name": f"img{i}", "image": f"registry.example/img{i}:1", "resources": copy.deepcopy(resources)} for i in range(images)]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kubernetes-image-puller", "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "kip"}},
                     "template": {"metadata": {"labels": {"app": "kip"}}, "spec": {"containers": containers, **pod_spec}}}}


def nodes(count):
    return [{"metadata": {"name": f"node-{i}", "labels": {}}} for i in range(count)]


def quota(name, hard, used=None, scopes=None, scope_selector=None):
    spec = {"hard": hard}
    if scopes:
        spec["scopes"] = scopes
    if scope_selector:
        spec["scopeSelector"] = {"matchExpressions": scope_selector}
    obj = {"metadata": {"name": name, "namespace": NS}, "spec": spec}
    if used is not None:
        obj["status"] = {"hard": hard, "used": used}
    return obj


def cluster_quota(name, hard, used, labels=None, annotations=None):
    selector = {}
    if labels is not None:
        selector["labels"] = labels
    if annotations is not None:
        selector["annotations"] = annotations
    return {"apiVersion": "quota.openshift.io/v1", "kind": "ClusterResourceQuota", "metadata": {"name": name},
            "spec": {"selector": selector, "quota": {"hard": hard}}, "status": {"total": {"hard": hard, "used": used}}}


def namespace(labels=None, annotations=None):
    return {"metadata": {"name": NS, "labels": labels or {}, "annotations": annotations or {}}}


def rows_by_resource(result, kind="ResourceQuota"):
    return {(r["quota"], r["resource"]): r for r in result["rows"] if r["kind"] == kind}


def test_the_seed_example_5_images_on_20_nodes_at_20Mi_need_2000Mi():
    result = check_daemonset(daemonset(5), namespace=NS, nodes=nodes(20),
                             resource_quotas=[quota("compute", {"limits.memory": "1500Mi"}, {"limits.memory": "0"})])
    assert result["fits"] is False
    assert result["eligible_nodes"] == 20
    assert rows_by_resource(result)[("compute", "limits.memory")] == {
        "quota": "compute", "kind": "ResourceQuota", "resource": "limits.memory", "needed": "2000Mi", "available": "1500Mi",
        "shortfall": "500Mi", "fits": False}
    assert result["shortfalls"] == [
        '20Mi x 5 containers x 20 nodes = 2000Mi limits.memory needed, 1500Mi available in ResourceQuota "compute" '
        f'(namespace {NS}): short by 500Mi']
    assert failure_message(result).startswith(f'image_puller_quota: DaemonSet "kubernetes-image-puller" does not fit in namespace {NS}: 20Mi x 5')


@pytest.mark.parametrize(
    ("hard", "used", "fits"),
    [
        pytest.param("2000Mi", "0", True, id="exactly enough quota fits"),
        pytest.param("2000Mi", "1Ki", False, id="one Ki already used makes it not fit"),
        pytest.param("2Gi", "48Mi", True, id="2Gi less 48Mi used leaves exactly 2000Mi"),
        pytest.param("2G", "0", False, id="2G is less than 2000Mi"),
    ],
)
def test_exact_comparison(hard, used, fits):
    result = check_daemonset(daemonset(5), namespace=NS, nodes=nodes(20),
                             resource_quotas=[quota("compute", {"limits.memory": hard}, {"limits.memory": used})])
    assert result["fits"] is fits


def test_cpu_is_counted_in_millicores_without_float_error():
    result = check_daemonset(daemonset(3), namespace=NS, nodes=nodes(3),
                             resource_quotas=[quota("cpu", {"requests.cpu": "450m", "limits.cpu": "1.8"}, {"requests.cpu": "0", "limits.cpu": "0"})])
    rows = rows_by_resource(result)
    assert rows[("cpu", "requests.cpu")]["needed"] == "450m"
    assert rows[("cpu", "limits.cpu")]["needed"] == "1800m"
    assert result["fits"] is True


def test_pods_and_daemonset_count_are_needed_too():
    result = check_daemonset(daemonset(1), namespace=NS, nodes=nodes(4),
                             resource_quotas=[quota("objects", {"pods": "3", "count/daemonsets.apps": "1"}, {"pods": "0", "count/daemonsets.apps": "1"})])
    rows = rows_by_resource(result)
    assert rows[("objects", "pods")]["shortfall"] == "1"
    assert rows[("objects", "count/daemonsets.apps")]["shortfall"] == "1"
    assert '1 pod x 4 nodes = 4 pods needed, 3 available in ResourceQuota "objects"' in result["shortfalls"][0] + result["shortfalls"][1]


def test_update_in_place_subtracts_what_the_current_daemonset_holds():
    ds = daemonset(5)
    current = [{"metadata": {"name": f"kip-{i}"}, "spec": copy.deepcopy(ds["spec"]["template"]["spec"]) | {"nodeName": f"node-{i}"},
                "status": {"phase": "Running"}} for i in range(20)]
    # the quota is full: the current DaemonSet's 20 pods use all of it
    rq = quota("compute", {"limits.memory": "2000Mi", "pods": "20", "count/daemonsets.apps": "1"},
               {"limits.memory": "2000Mi", "pods": "20", "count/daemonsets.apps": "1"})
    result = check_daemonset(ds, namespace=NS, nodes=nodes(20), resource_quotas=[rq], current_pods=current)
    assert result["fits"] is True
    rows = rows_by_resource(result)
    assert rows[("compute", "limits.memory")]["needed"] == "0Mi"
    assert rows[("compute", "count/daemonsets.apps")]["needed"] == "0"
    assert result["existing"] == {"pods": 20}
    assert any("less 2000Mi already held by the 20 pods" in m for m in result["messages"])


def test_an_update_that_grows_needs_only_the_difference():
    old = daemonset(5)
    new = daemonset(6)
    current = [{"spec": old["spec"]["template"]["spec"], "status": {"phase": "Running"}} for _pod in range(20)]
    rq = quota("compute", {"limits.memory": "2400Mi"}, {"limits.memory": "2000Mi"})
    result = check_daemonset(new, namespace=NS, nodes=nodes(20), resource_quotas=[rq], current_pods=current)
    row = rows_by_resource(result)[("compute", "limits.memory")]
    assert (row["needed"], row["available"], row["fits"]) == ("400Mi", "400Mi", True)


def test_finished_pods_of_the_current_daemonset_hold_nothing():
    ds = daemonset(1)
    pods = [{"spec": ds["spec"]["template"]["spec"], "status": {"phase": "Failed"}}]
    tally = PodTally()
    for pod in pods:
        tally.add(pod)
    rq = quota("compute", {"limits.memory": "1Gi", "count/pods": "10"}, {"limits.memory": "0", "count/pods": "1"})
    result = check_daemonset(ds, namespace=NS, nodes=nodes(2), resource_quotas=[rq], current_pods=tally)
    rows = rows_by_resource(result)
    assert rows[("compute", "limits.memory")]["needed"] == "40Mi"
    assert rows[("compute", "count/pods")]["needed"] == "1"  # count/pods counts pods in storage, finished or not


@pytest.mark.parametrize(
    ("adds", "live", "memory_held", "pods_held"),
    [
        pytest.param([("Running", 1, None)], 1, 20, 1, id="one live pod"),
        pytest.param([("Running", 999, None)], 999, 999 * 20, 999, id="one pod read for its spec counts for 999 like it"),
        pytest.param([("Failed", 1, None)], 0, 0, 1, id="a finished pod holds only its place in count/pods"),
        pytest.param([("Failed", 5, True)], 5, 100, 5, id="live given: the pods the Table showed live, whatever the sample's phase"),
        pytest.param([("Running", 3, False)], 0, 0, 3, id="live given as false"),
        pytest.param([("Running", 0, None)], 0, 0, 0, id="no pods"),
        pytest.param([("Running", 2, None), ("Succeeded", 1, None)], 2, 40, 3, id="live and finished pods of one spec"),
    ],
)
def test_pod_tally_counts(adds, live, memory_held, pods_held):
    ds = daemonset(1)
    tally = PodTally()
    for phase, times, given in adds:
        tally.add({"spec": ds["spec"]["template"]["spec"], "status": {"phase": phase}}, times=times, live=given)
    rq = quota("compute", {"limits.memory": "1Gi", "count/pods": "10000"}, {"limits.memory": "0", "count/pods": "0"})
    assert tally.live == live
    held = tally.usage_under(QuotaSource.from_resource_quota(rq))
    assert (held.get("limits.memory", 0), held.get("count/pods", 0)) == (memory_held * 2**20, pods_held)


@pytest.mark.parametrize(
    ("resources", "scopes", "selector", "applies"),
    [
        pytest.param(UPSTREAM, ["NotBestEffort"], None, True, id="a NotBestEffort quota counts pods with requests"),
        pytest.param(UPSTREAM, ["BestEffort"], None, False, id="a BestEffort quota ignores pods with requests"),
        pytest.param({}, ["BestEffort"], None, True, id="a BestEffort quota counts pods without any requests or limits"),
        pytest.param(UPSTREAM, ["NotTerminating"], None, True, id="DaemonSet pods are NotTerminating"),
        pytest.param(UPSTREAM, ["Terminating"], None, False, id="a Terminating quota ignores DaemonSet pods"),
        pytest.param(UPSTREAM, None, [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}], False,
                     id="a PriorityClass In quota ignores pods without that class"),
        pytest.param(UPSTREAM, None, [{"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}], True,
                     id="a PriorityClass NotIn quota counts pods without a class"),
        pytest.param(UPSTREAM, None, [{"scopeName": "PriorityClass", "operator": "Exists"}], False,
                     id="a PriorityClass Exists quota ignores pods without a class"),
        pytest.param(UPSTREAM, None, [{"scopeName": "PriorityClass", "operator": "DoesNotExist"}], True,
                     id="a PriorityClass DoesNotExist quota counts pods without a class"),
        pytest.param(UPSTREAM, ["NotTerminating", "NotBestEffort"], None, True, id="all scopes must match and here both do"),
        pytest.param(UPSTREAM, ["NotTerminating", "BestEffort"], None, False, id="all scopes must match and one does not"),
        pytest.param(UPSTREAM, ["CrossNamespacePodAffinity"], None, False, id="a CrossNamespacePodAffinity quota ignores pods without such affinity"),
    ],
)
def test_scopes(resources, scopes, selector, applies):
    rq = quota("scoped", {"pods": "1"}, {"pods": "0"}, scopes=scopes, scope_selector=selector)
    result = check_daemonset(daemonset(1, resources=resources), namespace=NS, nodes=nodes(3), resource_quotas=[rq])
    assert (("scoped", "pods") in rows_by_resource(result)) is applies
    assert result["fits"] is (not applies)
    if not applies:
        assert any('ResourceQuota "scoped"' in n and "does not apply" in n for n in result["notes"])


@pytest.mark.parametrize(
    ("priority_class", "operator", "values", "applies"),
    [
        pytest.param("high", "In", ["high", "critical"], True, id="a PriorityClass In quota counts pods of a listed class"),
        pytest.param("low", "In", ["high"], False, id="a PriorityClass In quota ignores pods of another class"),
        pytest.param("high", "NotIn", ["high"], False, id="a PriorityClass NotIn quota ignores pods of the listed class"),
        pytest.param("high", "Exists", [], True, id="a PriorityClass Exists quota counts pods with any class"),
        pytest.param("high", "DoesNotExist", [], False, id="a PriorityClass DoesNotExist quota ignores pods with a class"),
    ],
)
def test_priority_class_scope(priority_class, operator, values, applies):
    selector = [{"scopeName": "PriorityClass", "operator": operator, **({"values": values} if values else {})}]
    rq = quota("by-priority", {"pods": "100"}, {"pods": "0"}, scope_selector=selector)
    result = check_daemonset(daemonset(1, priorityClassName=priority_class), namespace=NS, nodes=nodes(3), resource_quotas=[rq])
    assert (("by-priority", "pods") in rows_by_resource(result)) is applies


def test_the_global_default_priority_class_is_what_the_quota_sees():
    selector = [{"scopeName": "PriorityClass", "operator": "In", "values": ["cluster-default"]}]
    rq = quota("by-priority", {"pods": "1"}, {"pods": "0"}, scope_selector=selector)
    classes = [{"metadata": {"name": "cluster-default"}, "globalDefault": True, "value": 1000}]
    result = check_daemonset(daemonset(1), namespace=NS, nodes=nodes(3), resource_quotas=[rq], priority_classes=classes)
    assert result["fits"] is False
    assert 'the pods get the global default PriorityClass "cluster-default"' in result["notes"]


def test_a_quota_without_used_figures_counts_them_as_zero_and_says_so():
    result = check_daemonset(daemonset(1), namespace=NS, nodes=nodes(2), resource_quotas=[quota("fresh", {"limits.memory": "1Gi"})])
    assert result["fits"] is True
    assert any('ResourceQuota "fresh"' in n and "counted as 0 used" in n for n in result["notes"])


def test_a_quota_on_limits_refuses_pods_whose_containers_set_none():
    resources = {"requests": {"cpu": "50m", "memory": "10Mi"}}
    rq = quota("compute", {"limits.memory": "10Gi", "requests.cpu": "10"}, {"limits.memory": "0", "requests.cpu": "0"})
    result = check_daemonset(daemonset(2, resources=resources), namespace=NS, nodes=nodes(3), resource_quotas=[rq])
    assert result["fits"] is False
    row = rows_by_resource(result)[("compute", "limits.memory")]
    assert (row["needed"], row["shortfall"]) == ("not set", "every pod refused")
    assert result["shortfalls"][0].startswith(
        f'ResourceQuota "compute" (namespace {NS}) tracks limits.memory, but container "img0", container "img1" set no memory limit')


def test_a_limit_range_default_satisfies_a_quota_on_limits():
    resources = {"requests": {"cpu": "50m", "memory": "10Mi"}}
    rq = quota("compute", {"limits.memory": "10Gi"}, {"limits.memory": "0"})
    lr = {"metadata": {"name": "defaults"}, "spec": {"limits": [{"type": "Container", "default": {"memory": "64Mi"}}]}}
    result = check_daemonset(daemonset(2, resources=resources), namespace=NS, nodes=nodes(3), resource_quotas=[rq], limit_ranges=[lr])
    assert result["fits"] is True
    assert rows_by_resource(result)[("compute", "limits.memory")]["needed"] == "384Mi"


def test_the_gpu_node_is_not_counted_without_a_toleration():
    node_list = nodes(3) + [{"metadata": {"name": "gpu-0"}, "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}]
    result = check_daemonset(daemonset(3), namespace=NS, nodes=node_list,
                             resource_quotas=[quota("compute", {"limits.memory": "180Mi"}, {"limits.memory": "0"})])
    assert result["eligible_nodes"] == 3
    assert result["nodes"]["excluded"] == {"with untolerated taint dedicated=gpu:NoSchedule": 1}
    assert result["fits"] is True


@pytest.mark.parametrize(
    ("item", "fits", "message"),
    [
        pytest.param({"type": "Container", "max": {"memory": "16Mi"}}, False,
                     'LimitRange "lr" (namespace k8s-image-puller): container "img0" memory limit 20Mi is above the Container max 16Mi',
                     id="a Container max below the limit refuses the pod"),
        pytest.param({"type": "Container", "max": {"memory": "20Mi"}}, True, None, id="a Container max equal to the limit fits"),
        pytest.param({"type": "Container", "min": {"cpu": "100m"}}, False,
                     'LimitRange "lr" (namespace k8s-image-puller): container "img0" cpu request 50m is below the Container min 100m',
                     id="a Container min above the request refuses the pod"),
        pytest.param({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}, False,
                     'LimitRange "lr" (namespace k8s-image-puller): container "img0" cpu limit/request ratio 4 is above the Container maxLimitRequestRatio 2',
                     id="a limit four times the request breaks a ratio of 2"),
        pytest.param({"type": "Container", "maxLimitRequestRatio": {"memory": "2"}}, True, None, id="a limit twice the request keeps a ratio of 2"),
        pytest.param({"type": "Pod", "max": {"memory": "50Mi"}}, False,
                     'LimitRange "lr" (namespace k8s-image-puller): the pod (all containers) memory limit 60Mi is above the Pod max 50Mi',
                     id="a Pod max applies to the sum of the containers"),
        pytest.param({"type": "Pod", "max": {"memory": "60Mi"}}, True, None, id="a Pod max equal to the sum fits"),
    ],
)
def test_limit_ranges(item, fits, message):
    lr = {"metadata": {"name": "lr"}, "spec": {"limits": [item]}}
    result = check_daemonset(daemonset(3), namespace=NS, nodes=nodes(3), limit_ranges=[lr])
    assert result["fits"] is fits
    if message:
        assert result["shortfalls"][0] == message
    assert all(r["kind"] == "LimitRange" for r in result["rows"])


@pytest.mark.parametrize(
    ("labels", "annotations", "namespace_labels", "namespace_annotations", "selected"),
    [
        pytest.param({"matchLabels": {"team": "a"}}, None, {"team": "a"}, {}, True, id="a cluster quota selects a namespace by label"),
        pytest.param({"matchLabels": {"team": "a"}}, None, {"team": "b"}, {}, False, id="a cluster quota skips a namespace with another label"),
        pytest.param({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}, None, {"team": "b"}, {}, True,
                     id="a cluster quota selects by label expression"),
        pytest.param(None, {"openshift.io/requester": "alice"}, {}, {"openshift.io/requester": "alice"}, True,
                     id="a cluster quota selects a namespace by annotation"),
        pytest.param({"matchLabels": {"team": "a"}}, {"openshift.io/requester": "alice"}, {"team": "a"}, {"openshift.io/requester": "bob"}, False,
                     id="a cluster quota with labels and annotations needs both"),
    ],
)
def test_cluster_quota_selection(labels, annotations, namespace_labels, namespace_annotations, selected):
    crq = cluster_quota("team", {"pods": "10"}, {"pods": "0"}, labels=labels, annotations=annotations)
    assert cluster_quota_selects(crq, namespace(namespace_labels, namespace_annotations)) is selected


def test_a_cluster_quota_compares_with_the_total_used_across_its_namespaces():
    crq = cluster_quota("team-a", {"limits.memory": "2Gi"}, {"limits.memory": "1Gi"}, labels={"matchLabels": {"team": "a"}})
    result = check_daemonset(daemonset(5), namespace=NS, nodes=nodes(20), cluster_quotas=[crq], namespace_object=namespace({"team": "a"}))
    assert result["fits"] is False
    assert result["shortfalls"] == [
        f'20Mi x 5 containers x 20 nodes = 2000Mi limits.memory needed, 1024Mi available in ClusterResourceQuota "team-a" '
        f'(selecting namespace {NS}): short by 976Mi']


def test_cluster_quotas_listed_as_applied_need_no_namespace_labels():
    crq = cluster_quota("team-a", {"pods": "1"}, {"pods": "0"}, labels={"matchLabels": {"team": "a"}})
    result = check_daemonset(daemonset(1), namespace=NS, nodes=nodes(2), cluster_quotas=[crq], cluster_quotas_selected=True)
    assert rows_by_resource(result, "ClusterResourceQuota")[("team-a", "pods")]["shortfall"] == "1"


def test_without_the_openshift_api_cluster_quotas_are_skipped_and_said_so():
    result = check_daemonset(daemonset(1), namespace=NS, nodes=nodes(2))
    assert result["fits"] is True
    assert CLUSTER_QUOTA_API_MISSING in result["notes"]
    assert CLUSTER_QUOTA_API_MISSING == "ClusterResourceQuota API not present: skipped"


def test_no_eligible_node_is_noted():
    result = check_daemonset(daemonset(1, nodeSelector={"disk": "ssd"}), namespace=NS, nodes=nodes(2))
    assert result["eligible_nodes"] == 0
    assert any(n.startswith("no node is eligible (0 of 2 nodes eligible") for n in result["notes"])


def test_a_definition_that_is_not_a_daemonset_is_refused():
    with pytest.raises(ValueError, match="must be a DaemonSet"):
        check_daemonset({"kind": "Deployment"}, namespace=NS, nodes=[])
