# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""image_puller_adopt: which objects are an upstream kubernetes-image-puller install, and what the role is told."""

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import adopt, upstream
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.names import FIELD_MANAGER


def deployment(name="kubernetes-image-puller", env=("DEPLOYMENT_NAME",), config_maps=("k8s-image-puller",), account="k8s-image-puller"):
    """The controller Deployment as deploy/helm/templates/app.yaml renders it (env/envFrom/serviceAccountName)."""
    container = {"name": name, "image": "quay.io/eclipse/kubernetes-image-puller:next",
                 "env": [{"name": key, "value": name} for key in env],
                 "envFrom": [{"configMapRef": {"name": cm}} for cm in config_maps]}
    return {"metadata": {"name": name, "uid": "d-1"},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"spec": {"serviceAccountName": account, "containers": [container]}}}}


def configmap(name="k8s-image-puller", data=None, labels=None, annotations=None):
    data = {"IMAGES": "a=a:1;", "DAEMONSET_NAME": "kubernetes-image-puller", "NAMESPACE": "ns"} if data is None else data
    return {"metadata": {"name": name, "uid": f"c-{name}", "labels": labels or {}, "annotations": annotations or {}}, "data": data}


def daemonset(selector=None, name="kubernetes-image-puller"):
    return {"metadata": {"name": name, "uid": f"ds-{name}"},
            "spec": {"selector": {"matchLabels": dict(upstream.DAEMONSET_SELECTOR) if selector is None else selector}}}


@pytest.mark.parametrize(("workload", "expected"), [
    (deployment(), ["k8s-image-puller"]),
    # a renamed or mirrored controller is still one: DEPLOYMENT_NAME is what it needs to find itself
    (deployment(name="puller", config_maps=("puller-config",)), ["puller-config"]),
    (deployment(config_maps=()), []),
    # any other Deployment, even one reading a ConfigMap of the same name
    (deployment(env=("OTHER",)), None),
    ({"metadata": {"name": "x"}, "spec": {}}, None),
], ids=["helm", "renamed", "no envFrom", "not the controller", "no template"])
def test_a_deployment_is_the_upstream_controller_when_a_container_sets_deployment_name(workload, expected):
    assert upstream.controller_configmaps(workload) == expected


@pytest.mark.parametrize(("obj", "read_by", "expected"), [
    (configmap(), (), True),
    # the role's own ConfigMap carries the same keys, and its managed-by label
    (configmap(name="kubernetes-image-puller", labels={"app.kubernetes.io/managed-by": FIELD_MANAGER}), (), False),
    (configmap(labels={"app.kubernetes.io/managed-by": FIELD_MANAGER}), ("k8s-image-puller",), False),
    # only one of the two keys both upstream installs write: someone else's
    (configmap(data={"IMAGES": "a=a:1;"}), (), False),
    (configmap(name="other", data={"x": "1"}), (), False),
    # whatever a controller reads is its configuration
    (configmap(name="custom", data={"IMAGES": "a=a:1;"}), ("custom",), True),
    # someone else's label value is not the role's
    (configmap(labels={"app.kubernetes.io/managed-by": "Helm"}), (), True),
], ids=["helm", "the role's own", "the role's, named by a controller", "one key", "unrelated", "read by a controller", "helm-labelled"])
def test_an_upstream_configmap_is_one_a_controller_reads_or_one_with_the_upstream_keys_the_role_did_not_make(obj, read_by, expected):
    assert upstream.is_upstream_configmap(obj, managed_by=FIELD_MANAGER, read_by=read_by) is expected


@pytest.mark.parametrize(("selector", "expected"), [
    (None, True),
    ({"app.kubernetes.io/name": "image-puller"}, False),
    ({"app.kubernetes.io/name": "kubernetes-image-puller", "app.kubernetes.io/instance": "kubernetes-image-puller"}, False),
    ({**upstream.DAEMONSET_SELECTOR, "extra": "x"}, False),
])
def test_an_upstream_daemonset_has_the_controllers_fixed_selector(selector, expected):
    assert upstream.is_upstream_daemonset(daemonset(selector)) is expected


def test_the_upstream_pod_selector_string_is_sorted_and_complete():
    assert upstream.daemonset_selector() == "app.kubernetes.io/name=image-puller,test=daemonset-test"


def found(**parts):
    base = {"controllers": [], "configmaps": [], "read_by": [], "daemonsets": [], "orphaned_pods": [], "pods": [], "service_accounts": []}
    return {**base, **parts}


def test_a_whole_install_is_reported_with_what_to_do_and_its_configmap_without_namespace():
    result = adopt.report(found(controllers=[deployment()], configmaps=[configmap()], read_by=["k8s-image-puller"],
                                daemonsets=[daemonset()], service_accounts=["k8s-image-puller"]), "ns")
    assert result["installed"] and result["pending"]
    assert result["found"] == ["Deployment/kubernetes-image-puller", "ConfigMap/k8s-image-puller", "DaemonSet/kubernetes-image-puller"]
    assert result["configmap"] == "k8s-image-puller"
    assert result["config"] == {"apiVersion": "v1", "kind": "ConfigMap",
                                "data": {"IMAGES": "a=a:1;", "DAEMONSET_NAME": "kubernetes-image-puller"}}
    message = result["message"]
    assert message.startswith("namespace ns holds an upstream kubernetes-image-puller install: Deployment/kubernetes-image-puller, ")
    for part in ("Nothing was changed", "image_puller_adopt: true", "CACHING_INTERVAL_HOURS", "helm uninstall"):
        assert part in message


def test_nothing_upstream_is_nothing_to_report():
    result = adopt.report(found(), "ns")
    assert not result["installed"] and not result["pending"] and result["message"] is None and result["config"] is None


def test_pods_left_running_by_an_interrupted_takeover_count_as_an_install():
    result = adopt.report(found(orphaned_pods=[{"metadata": {"name": "kubernetes-image-puller-abcde"}}]), "ns")
    assert result["installed"] and result["pending"]
    assert "1 upstream puller pod(s) no DaemonSet owns" in result["message"]


def test_a_configmap_taken_over_earlier_is_read_but_leaves_nothing_pending():
    taken = configmap(annotations={adopt.ADOPTED_ANNOTATION: FIELD_MANAGER})
    result = adopt.report(found(configmaps=[taken]), "ns")
    assert result["installed"] and not result["pending"]
    assert result["config"]["data"]["IMAGES"] == "a=a:1;"
    assert "took over earlier" in result["message"] and "Keep image_puller_adopt: true" in result["message"]


def test_the_configmap_the_controller_reads_wins_over_other_upstream_ones():
    chosen = adopt.settings_configmap(found(configmaps=[configmap(name="old"), configmap(name="k8s-image-puller")],
                                            read_by=["k8s-image-puller"]))
    assert chosen["metadata"]["name"] == "k8s-image-puller"


def test_several_upstream_configmaps_and_no_controller_is_an_error_naming_them():
    with pytest.raises(ImagePullerError, match="ConfigMap/a, ConfigMap/b; delete the ones not in use"):
        adopt.settings_configmap(found(configmaps=[configmap(name="a"), configmap(name="b")]))
