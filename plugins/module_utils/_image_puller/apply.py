# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""Bring the DaemonSet to the definition: server-side apply, re-create only for an immutable change.

The pure helpers (definition checks, the immutable-change detector, the
normalizer behind both `changed` and the diff) come first; apply_present and
apply_absent use the cluster verbs of api.DaemonSetApi.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ApiError, ImagePullerError

API_VERSION = "apps/v1"
KIND = "DaemonSet"
# Written by the API server on every write; they say nothing about what the user asked for.
SERVER_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")
SERVER_ANNOTATIONS = ("deprecated.daemonset.template.generation",)


def prepare_definition(definition: Mapping[str, Any], namespace: str | None, *, state: str = "present") -> dict[str, Any]:
    """A copy of the definition to apply, with its namespace; errors say what to fix.

    To delete (state absent) only the name and namespace matter.
    """
    if not isinstance(definition, Mapping):
        raise ImagePullerError(f"definition must be a DaemonSet (a dictionary), got {type(definition).__name__}")
    prepared = copy.deepcopy(dict(definition))
    prepared.setdefault("apiVersion", API_VERSION)
    prepared.setdefault("kind", KIND)
    if prepared["kind"] != KIND or prepared["apiVersion"] != API_VERSION:
        raise ImagePullerError(
            f"definition must be a DaemonSet of {API_VERSION}, got kind {prepared['kind']!r} of apiVersion {prepared['apiVersion']!r}")
    metadata = prepared.setdefault("metadata", {})
    if not metadata.get("name"):
        raise ImagePullerError("definition has no metadata.name")
    own_namespace = metadata.get("namespace")
    if own_namespace and namespace and own_namespace != namespace:
        raise ImagePullerError(
            f"definition has metadata.namespace {own_namespace!r} but option namespace is {namespace!r}: set one, or make them equal")
    if not (own_namespace or namespace):
        raise ImagePullerError(f"DaemonSet {metadata['name']!r}: set metadata.namespace in the definition or the option namespace")
    metadata["namespace"] = own_namespace or namespace
    if state == "present" and not (prepared.get("spec") or {}).get("selector"):
        raise ImagePullerError(f"DaemonSet {metadata['namespace']}/{metadata['name']}: definition has no spec.selector")
    prepared.pop("status", None)
    for field in SERVER_METADATA:
        # a definition copied from the cluster carries these; applying them would fail or pin a stale version
        metadata.pop(field, None)
    return prepared


def _canonical_selector(selector: Mapping[str, Any] | None) -> dict[str, Any]:
    selector = selector or {}
    expressions = sorted(
        (
            {"key": e.get("key"), "operator": e.get("operator"), "values": sorted(e.get("values") or [])}
            for e in selector.get("matchExpressions") or []
        ),
        key=lambda e: json.dumps(e, sort_keys=True),
    )
    return {"matchLabels": dict(selector.get("matchLabels") or {}), "matchExpressions": expressions}


def _selector_text(selector: Mapping[str, Any]) -> str:
    shown = {key: value for key, value in selector.items() if value}
    return json.dumps(shown, sort_keys=True)


def immutable_changes(live: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
    """Why the live DaemonSet cannot be updated to the desired one in place (empty: it can).

    Only spec.selector of a DaemonSet is immutable. Order of labels, expressions
    and values does not matter to the API, so it does not matter here.
    """
    live_selector = _canonical_selector((live.get("spec") or {}).get("selector"))
    desired_selector = _canonical_selector((desired.get("spec") or {}).get("selector"))
    if live_selector == desired_selector:
        return []
    return [f"spec.selector is immutable and changes from {_selector_text(live_selector)} to {_selector_text(desired_selector)}"]


def normalize(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """The object without what the server writes on its own (status, versions, managedFields, ...)."""
    if not obj:
        return {}
    normalized = copy.deepcopy(dict(obj))
    normalized.pop("status", None)
    metadata = normalized.get("metadata") or {}
    for field in SERVER_METADATA:
        metadata.pop(field, None)
    annotations = metadata.get("annotations") or {}
    for annotation in SERVER_ANNOTATIONS:
        annotations.pop(annotation, None)
    if "annotations" in metadata and not annotations:
        del metadata["annotations"]
    return normalized


def has_changed(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> bool:
    """Whether anything but server bookkeeping differs; the same test in check mode and for real."""
    return normalize(before) != normalize(after)


def make_diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """Ansible's before/after diff of the normalized objects."""
    return {"before": normalize(before), "after": normalize(after)}


@dataclasses.dataclass
class Applied:
    """What applying did: the object before and after, and whether it had to be re-created."""

    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed: bool
    recreate_reason: str | None = None
    warnings: list = dataclasses.field(default_factory=list)

    @property
    def recreated(self) -> bool:
        return self.recreate_reason is not None


def apply_present(api: Any, definition: dict[str, Any], *, wait_gone: Any) -> Applied:
    """Create or update the DaemonSet; delete and create it when an immutable field changes.

    In check mode (api.dry_run) every write is a server-side dry run. wait_gone(uid)
    blocks until a deleted DaemonSet has left the API (the waiter supplies it).
    """
    before = api.get()
    if before is None:
        try:
            after = api.apply(definition)
        except ApiError as exc:
            # 404 on an apply: the namespace is missing (check mode on a fresh install)
            if not (api.dry_run and exc.not_found):
                raise
            # check mode on a fresh install: the namespace may only be dry-run-created itself
            return Applied(before=None, after=definition, changed=True,
                           warnings=[f"{api.ref}: the server-side dry run could not run ({exc.msg}); showing the definition as given"])
        return Applied(before=None, after=after, changed=True)

    reasons = immutable_changes(before, definition)
    if not reasons:
        after = api.apply(definition)
        return Applied(before=before, after=after, changed=has_changed(before, after))

    reason = "; ".join(reasons)
    uid = (before.get("metadata") or {}).get("uid")
    api.delete(uid=uid)
    if api.dry_run:
        # the server cannot dry-run a create over an object that still exists
        return Applied(before=before, after=definition, changed=True, recreate_reason=reason,
                       warnings=[f"{api.ref} would be deleted and created again ({reason}); the diff shows the definition as given"])
    wait_gone(uid)
    after = api.apply(definition)
    return Applied(before=before, after=after, changed=True, recreate_reason=reason)


def apply_absent(api: Any) -> Applied:
    """Delete the DaemonSet (foreground, so its pods go first); nothing to do when there is none."""
    before = api.get()
    if before is None:
        return Applied(before=None, after=None, changed=False)
    api.delete(uid=(before.get("metadata") or {}).get("uid"))
    return Applied(before=before, after=None, changed=True)
