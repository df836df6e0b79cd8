# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import apply
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.tests.unit.plugins.module_utils._daemonset_fixtures import DELETE, obj

LABELS = {"app.kubernetes.io/name": "kubernetes-image-puller", "app.kubernetes.io/instance": "kubernetes-image-puller"}


@pytest.mark.parametrize(
    ("desired", "reasons"),
    [
        pytest.param(obj("daemonset"), [], id="the same selector is no immutable change"),
        pytest.param(obj("daemonset", **{"spec.selector.matchLabels": dict(reversed(list(LABELS.items())))}), [],
                     id="the same labels in another order are no change"),
        pytest.param(obj("daemonset", **{"spec.template.spec.containers.0.image": "quay.io/example/java:21"}), [],
                     id="a new image is an in-place update"),
        pytest.param(
            obj("daemonset", **{"spec.selector": {"matchLabels": {"app": "puller"}}}),
            ['spec.selector is immutable and changes from {"matchLabels": {"app.kubernetes.io/instance": "kubernetes-image-puller", '
             '"app.kubernetes.io/name": "kubernetes-image-puller"}} to {"matchLabels": {"app": "puller"}}'],
            id="other matchLabels are an immutable change"),
        pytest.param(
            obj("daemonset", **{"spec.selector.matchExpressions": [{"key": "tier", "operator": "In", "values": ["cache"]}]}),
            ['spec.selector is immutable and changes from {"matchLabels": {"app.kubernetes.io/instance": "kubernetes-image-puller", '
             '"app.kubernetes.io/name": "kubernetes-image-puller"}} to {"matchExpressions": [{"key": "tier", "operator": "In", '
             '"values": ["cache"]}], "matchLabels": {"app.kubernetes.io/instance": "kubernetes-image-puller", '
             '"app.kubernetes.io/name": "kubernetes-image-puller"}}'],
            id="an added matchExpression is an immutable change"),
    ],
)
def test_immutable_changes(desired, reasons):
    assert apply.immutable_changes(obj("daemonset"), desired) == reasons


def test_expression_values_in_another_order_are_no_change():
    live = obj("daemonset", **{"spec.selector": {"matchExpressions": [{"key": "t", "operator": "In", "values": ["a", "b"]}]}})
    desired = obj("daemonset", **{"spec.selector": {"matchExpressions": [{"key": "t", "operator": "In", "values": ["b", "a"]}]}})
    assert apply.immutable_changes(live, desired) == []


def test_normalize_strips_server_bookkeeping_only():
    normalized = apply.normalize(obj("daemonset"))
    assert "status" not in normalized
    assert sorted(normalized["metadata"]) == ["labels", "name", "namespace"]
    assert normalized["spec"] == obj("daemonset")["spec"]


def test_normalize_keeps_user_annotations():
    live = obj("daemonset", **{"metadata.annotations": {"deprecated.daemonset.template.generation": "2", "kip.image_puller/checksum": "abc"}})
    assert apply.normalize(live)["metadata"]["annotations"] == {"kip.image_puller/checksum": "abc"}


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        pytest.param(obj("daemonset"), obj("daemonset", **{"metadata.resourceVersion": "4712", "status.numberReady": 3,
                                                           "metadata.managedFields": []}),
                     False, id="only status, resourceVersion and managedFields moved: not changed"),
        pytest.param(obj("daemonset"), obj("daemonset", **{"metadata.generation": 3,
                                                           "metadata.annotations": {"deprecated.daemonset.template.generation": "3"},
                                                           "spec.template.spec.containers.0.image": "quay.io/example/java:21"}),
                     True, id="a new image is a change"),
        pytest.param(obj("daemonset"), obj("daemonset", **{"metadata.labels.team": "platform"}), True, id="a new label is a change"),
        pytest.param(None, obj("daemonset"), True, id="creating is a change"),
        pytest.param(obj("daemonset"), None, True, id="deleting is a change"),
        pytest.param(None, None, False, id="nothing before and after is no change"),
    ],
)
def test_has_changed(before, after, changed):
    assert apply.has_changed(before, after) is changed


def test_make_diff_shows_normalized_before_and_after():
    after = obj("daemonset", **{"spec.template.spec.containers.0.image": "quay.io/example/java:21"})
    diff = apply.make_diff(obj("daemonset"), after)
    assert diff["before"]["spec"]["template"]["spec"]["containers"][0]["image"] == "quay.io/example/java:17"
    assert diff["after"]["spec"]["template"]["spec"]["containers"][0]["image"] == "quay.io/example/java:21"
    assert "managedFields" not in diff["after"]["metadata"] and "status" not in diff["after"]
    assert apply.make_diff(None, after)["before"] == {}


def test_prepare_definition_fills_namespace_and_drops_server_fields():
    definition = obj("daemonset", **{"metadata.namespace": DELETE, "apiVersion": DELETE, "kind": DELETE})
    prepared = apply.prepare_definition(definition, "image-puller")
    assert prepared["apiVersion"] == "apps/v1" and prepared["kind"] == "DaemonSet"
    assert prepared["metadata"]["namespace"] == "image-puller"
    assert "status" not in prepared
    assert not set(apply.SERVER_METADATA) & set(prepared["metadata"])
    assert "namespace" not in definition["metadata"], "the caller's definition is not modified"


@pytest.mark.parametrize(
    ("definition", "namespace", "message"),
    [
        pytest.param("kind: DaemonSet", None, "definition must be a DaemonSet (a dictionary), got str", id="a string is refused"),
        pytest.param(obj("daemonset", kind="Deployment"), None, "definition must be a DaemonSet of apps/v1, got kind 'Deployment'",
                     id="another kind is refused"),
        pytest.param(obj("daemonset", **{"metadata.name": DELETE}), None, "definition has no metadata.name", id="a name is needed"),
        pytest.param(obj("daemonset", **{"metadata.namespace": DELETE}), None,
                     "DaemonSet 'kubernetes-image-puller': set metadata.namespace in the definition or the option namespace",
                     id="a namespace is needed from one side"),
        pytest.param(obj("daemonset"), "other", "definition has metadata.namespace 'image-puller' but option namespace is 'other'",
                     id="two different namespaces are refused"),
        pytest.param(obj("daemonset", **{"spec.selector": DELETE}), None,
                     "DaemonSet image-puller/kubernetes-image-puller: definition has no spec.selector", id="a selector is needed"),
    ],
)
def test_prepare_definition_refuses(definition, namespace, message):
    with pytest.raises(ImagePullerError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        apply.prepare_definition(definition, namespace)


def test_prepare_definition_to_delete_needs_only_name_and_namespace():
    prepared = apply.prepare_definition({"metadata": {"name": "kubernetes-image-puller"}}, "image-puller", state="absent")
    assert prepared["metadata"] == {"name": "kubernetes-image-puller", "namespace": "image-puller"}


class FakeApi:
    """An in-memory stand-in for api.DaemonSetApi (our own interface, not the Kubernetes API)."""

    ref = "DaemonSet image-puller/kubernetes-image-puller"

    def __init__(self, live=None, *, dry_run=False):
        self.live, self.dry_run, self.calls = live, dry_run, []

    def get(self):
        return self.live

    def apply(self, definition):
        self.calls.append("apply")
        applied = {**definition, "metadata": {**definition["metadata"], "resourceVersion": "2", "uid": "new"}}
        if not self.dry_run:
            self.live = applied
        return applied

    def delete(self, *, uid=None):
        self.calls.append(f"delete {uid}")
        if not self.dry_run:
            self.live = None


def definition(**changes):
    return apply.prepare_definition(obj("daemonset", **changes), None)


def test_apply_present_creates_when_absent():
    applied = apply.apply_present(FakeApi(), definition(), wait_gone=None)
    assert (applied.changed, applied.recreated, applied.before) == (True, False, None)


def test_apply_present_updates_in_place_and_reports_no_change_when_nothing_moved():
    fake = FakeApi(live=obj("daemonset"))
    applied = apply.apply_present(fake, definition(), wait_gone=None)
    assert (applied.changed, applied.recreated, fake.calls) == (False, False, ["apply"])


def test_apply_present_recreates_for_a_new_selector_and_waits_for_the_old_one_to_go():
    gone = []
    fake = FakeApi(live=obj("daemonset"))
    applied = apply.apply_present(fake, definition(**{"spec.selector": {"matchLabels": {"app": "puller"}}}), wait_gone=gone.append)
    assert fake.calls == ["delete 0b5c4e0c-1f0e-4d43-9a53-2d3b8c1f7a10", "apply"]
    assert gone == ["0b5c4e0c-1f0e-4d43-9a53-2d3b8c1f7a10"]
    assert applied.changed and applied.recreated and applied.recreate_reason.startswith("spec.selector is immutable")


def test_check_mode_recreate_only_dry_runs_the_delete():
    fake = FakeApi(live=obj("daemonset"), dry_run=True)
    applied = apply.apply_present(fake, definition(**{"spec.selector": {"matchLabels": {"app": "puller"}}}), wait_gone=None)
    assert fake.calls == ["delete 0b5c4e0c-1f0e-4d43-9a53-2d3b8c1f7a10"] and fake.live is not None
    assert applied.changed and applied.recreated and applied.warnings


@pytest.mark.parametrize(
    ("live", "changed", "calls"),
    [
        pytest.param(obj("daemonset"), True, ["delete 0b5c4e0c-1f0e-4d43-9a53-2d3b8c1f7a10"], id="an existing DaemonSet is deleted"),
        pytest.param(None, False, [], id="a missing DaemonSet is no change"),
    ],
)
def test_apply_absent(live, changed, calls):
    fake = FakeApi(live=live)
    assert apply.apply_absent(fake).changed is changed
    assert fake.calls == calls
