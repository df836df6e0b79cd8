# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rules of a whole deploy in one run: which objects are accepted, what a namespace gets, what is reported."""

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import deploy, objects
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError

OURS = {"app.kubernetes.io/managed-by": "kip.image_puller", "app.kubernetes.io/name": "kubernetes-image-puller"}
PSA = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}


def namespace(labels=None, **extra):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "puller", "labels": dict(labels or {})}, **extra}


def configmap(**metadata):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "puller", **metadata}, "data": {"IMAGES": "a=b;"}}


@pytest.mark.parametrize(
    ("live", "definition", "body", "action"),
    [
        pytest.param(None, namespace({**OURS, **PSA}), namespace({**OURS, **PSA}), objects.CREATED, id="a missing namespace is created whole"),
        pytest.param(namespace(OURS), namespace({**OURS, **PSA}), namespace({**OURS, **PSA}), objects.UPDATED,
                     id="one with our managed-by label gets the whole definition"),
        pytest.param(namespace({"team": "a"}), namespace({**OURS, **PSA}),
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "puller", "labels": PSA}}, objects.LABELLED,
                     id="someone else's gets the pod security labels only"),
        pytest.param(namespace({"app.kubernetes.io/managed-by": "helm"}), namespace({**OURS, **PSA}),
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "puller", "labels": PSA}}, objects.LABELLED,
                     id="another manager's label is not ours"),
        pytest.param(namespace({"team": "a"}), namespace(OURS), None, objects.UNCHANGED,
                     id="someone else's is left alone when there is no pod security label to write"),
        pytest.param(namespace({}), namespace(PSA), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "puller", "labels": PSA}},
                     objects.LABELLED, id="a definition without managed-by owns no existing namespace"),
        pytest.param(None, {"metadata": {"name": "puller"}, "status": {"phase": "Active"}},
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "puller"}}, objects.CREATED,
                     id="apiVersion and kind are filled in, status dropped"),
    ],
)
def test_namespace_body(live, definition, body, action):
    assert objects.namespace_body(definition, live) == (body, action)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param("x", "objects must be a list of Kubernetes objects, got str", id="not a list"),
        pytest.param(["x"], "objects[0] must be a Kubernetes object (a dictionary), got str", id="not a mapping"),
        pytest.param([{"kind": "ConfigMap", "metadata": {"name": "a"}}], "objects[0] needs apiVersion, kind and metadata.name", id="no apiVersion"),
        pytest.param([configmap(), {"apiVersion": "v1", "kind": "ConfigMap"}], "objects[1] needs apiVersion", id="no name"),
        pytest.param([{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2VjcmV0"}}],
                     "objects[0] (Secret/s): Secrets are not applied by this module", id="a Secret is refused"),
        pytest.param([{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"}}],
                     "the DaemonSet goes in the option definition", id="a DaemonSet belongs in definition"),
        pytest.param([namespace()], "the namespace goes in the option namespace_definition", id="a Namespace belongs in namespace_definition"),
        pytest.param([configmap(namespace="other")], "objects[0] (ConfigMap/other/puller) is in namespace 'other', not in the DaemonSet's "
                     "namespace 'puller'", id="another namespace"),
    ],
)
def test_check_objects_refuses(given, message):
    with pytest.raises(ImagePullerError, match=None) as caught:
        objects.check_objects(given, "puller")
    assert message in caught.value.msg


def test_check_objects_copies_and_drops_status():
    given = [configmap(namespace="puller", labels={"a": "b"}) | {"status": {"x": 1}}]
    checked = objects.check_objects(given, "puller")
    assert checked == [configmap(namespace="puller", labels={"a": "b"})]
    checked[0]["metadata"]["labels"]["a"] = "changed"
    assert given[0]["metadata"]["labels"]["a"] == "b", "the caller's objects are not modified"


@pytest.mark.parametrize(
    ("action", "before", "after", "changed", "reported"),
    [
        pytest.param(objects.CREATED, None, configmap(), True, objects.CREATED, id="created"),
        pytest.param(objects.UPDATED, configmap(resourceVersion="1"), configmap(resourceVersion="1"), False, objects.UNCHANGED,
                     id="an apply that changed nothing is unchanged"),
        pytest.param(objects.UPDATED, configmap(resourceVersion="1"), configmap(resourceVersion="2", managedFields=[{"manager": "x"}]),
                     False, objects.UNCHANGED, id="server bookkeeping is no change"),
        pytest.param(objects.UPDATED, configmap(), configmap(labels={"a": "b"}), True, objects.UPDATED, id="a new label is a change"),
        pytest.param(objects.WOULD_CREATE, None, configmap(), True, objects.WOULD_CREATE, id="check mode in a pending namespace"),
        pytest.param(objects.UNCHANGED, namespace(), namespace(), False, objects.UNCHANGED, id="left alone"),
    ],
)
def test_outcome_report_and_diff(action, before, after, changed, reported):
    outcome = objects.Outcome(obj=configmap(namespace="puller"), action=action, before=before, after=after)
    assert outcome.report() == {"kind": "ConfigMap", "name": "puller", "namespace": "puller", "changed": changed, "action": reported}
    diff = outcome.diff()
    assert diff["before_header"] == diff["after_header"] == "ConfigMap/puller/puller"
    assert "managedFields" not in (diff["after"].get("metadata") or {})


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, False, id="only the DaemonSet"),
        pytest.param({"objects": [], "quota_check": False, "restart": False, "namespace_definition": None}, False, id="defaults"),
        pytest.param({"objects": [configmap()]}, True, id="objects"),
        pytest.param({"quota_check": True}, True, id="quota check"),
        pytest.param({"restart": True}, True, id="restart"),
        pytest.param({"namespace_definition": namespace()}, True, id="namespace"),
    ],
)
def test_deploy_wanted(params, expected):
    assert deploy.wanted(params) is expected


def test_namespace_definition_must_be_the_daemonsets_namespace():
    with pytest.raises(ImagePullerError) as caught:
        deploy.check_params({"namespace_definition": {"metadata": {"name": "other"}}}, "puller")
    assert caught.value.msg == "namespace_definition must be the Namespace 'puller' of the DaemonSet, got Namespace 'other'"


def test_restart_patch_is_a_pod_template_annotation():
    assert objects.restart_patch("2026-12-02T18:00:00Z") == {
        "spec": {"template": {"metadata": {"annotations": {"image-puller.kip/refreshed-at": "2026-12-02T18:00:00Z"}}}}}
