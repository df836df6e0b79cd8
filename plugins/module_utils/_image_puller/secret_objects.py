# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""The pull Secrets of image_puller_daemonset's option pull_secrets: applied, pruned, and never shown.

Each Secret is server-side applied like the other objects (objects.py), but what the module
reports of it (its objects entry and its diff) has every data value masked (pull_secrets.mask),
so no credential leaves the module. A Secret of the same name that the module did not make is
refused before any write; Secrets it made for the DaemonSet (its label pull_secrets.LABEL) that
are no longer given are deleted.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import objects as objs
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.api import FIELD_MANAGER
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import api_error
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.pull_secrets import LABEL, mask

try:
    from kubernetes.dynamic.exceptions import DynamicApiError
except ImportError:  # the client is checked for by AnsibleK8SModule
    DynamicApiError = Exception

DELETED = "deleted"


def selector(daemonset_name: str) -> str:
    """The label selector of the Secrets the module made for a DaemonSet."""
    return f"{LABEL}={daemonset_name},{objs.MANAGED_BY}={FIELD_MANAGER}"


def check_secrets(secrets: Any, namespace: str, daemonset_name: str) -> list[dict[str, Any]]:
    """Copies of the Secrets to apply; errors name the Secret (never its data), before any read or write."""
    if not isinstance(secrets, list):
        raise ImagePullerError(f"pull_secrets must be a list of Secrets, got {type(secrets).__name__}")
    checked, names = [], set()
    for index, secret in enumerate(secrets):
        where = f"pull_secrets[{index}]"
        if not isinstance(secret, Mapping):
            raise ImagePullerError(f"{where} must be a Secret (a dictionary), got {type(secret).__name__}")
        secret = copy.deepcopy(dict(secret))
        secret["apiVersion"], secret["kind"] = secret.get("apiVersion") or "v1", secret.get("kind") or "Secret"
        metadata = secret.setdefault("metadata", {})
        name = metadata.get("name")
        if not name:
            raise ImagePullerError(f"{where} has no metadata.name")
        if metadata.get("namespace") not in (None, namespace):
            raise ImagePullerError(f"{where} (Secret {name}) is in namespace {metadata['namespace']!r}, "
                                   f"not in the DaemonSet's namespace {namespace!r}")
        metadata["namespace"] = namespace
        labels = metadata.get("labels") or {}
        if labels.get(LABEL) != daemonset_name or labels.get(objs.MANAGED_BY) != FIELD_MANAGER:
            raise ImagePullerError(f"{where} (Secret {name}) needs the labels {LABEL}={daemonset_name} and "
                                   f"{objs.MANAGED_BY}={FIELD_MANAGER}, by which a later run finds what to delete")
        if name in names:
            raise ImagePullerError(f"{where}: Secret {name} is given twice")
        names.add(name)
        checked.append(secret)
    return checked


def shown(secret: Mapping[str, Any]) -> dict[str, Any]:
    """What names a Secret in the objects result: no data."""
    return {"apiVersion": secret.get("apiVersion", "v1"), "kind": "Secret",
            "metadata": {key: value for key, value in (secret.get("metadata") or {}).items() if key in ("name", "namespace")}}


def refuse_foreign(api: objs.ObjectApi, secrets: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """The live Secrets by name; an error before any write when one of them was not made by this module."""
    live = {}
    for secret in secrets:
        found = api.read(secret)
        labels = ((found or {}).get("metadata") or {}).get("labels") or {}
        if found is not None and labels.get(objs.MANAGED_BY) != FIELD_MANAGER:
            raise ImagePullerError(
                f"{objs.ref(secret)} exists and was not made by {FIELD_MANAGER} (no label {objs.MANAGED_BY}={FIELD_MANAGER}); "
                "it is left alone: delete or rename it, or give its name in image_puller_image_pull_secrets instead of credentials")
        live[secret["metadata"]["name"]] = found
    return live


def _delete(api: objs.ObjectApi, secret: Mapping[str, Any]) -> None:
    metadata = secret["metadata"]
    resource = api.resource_of(secret)
    try:
        api.retrier.call(f"{objs.ref(secret)}: could not delete it", lambda: api.dynamic.delete(
            resource, name=metadata["name"], namespace=metadata["namespace"], **({"dry_run": "All"} if api.dry_run else {})))
    except DynamicApiError as exc:
        error = api_error(exc, "delete it", subject=objs.ref(secret))
        if not error.not_found:
            raise error from exc


def apply_secrets(api: objs.ObjectApi, secrets: list[dict[str, Any]], live: dict[str, Any], *, namespace: str,
                  daemonset_name: str, namespace_pending: bool, outcomes: list[objs.Outcome]) -> None:
    """Apply each Secret, then delete the module's Secrets for this DaemonSet that are not given; masked outcomes."""
    for secret in secrets:
        before = live.get(secret["metadata"]["name"])
        if namespace_pending:
            after, action = secret, objs.WOULD_CREATE
        else:
            after = api.apply(api.resource_of(secret), secret)
            action = objs.CREATED if before is None else objs.UPDATED
        masked_before, masked_after = mask(before, after)
        outcomes.append(objs.Outcome(obj=shown(secret), action=action, before=masked_before, after=masked_after))
    if namespace_pending:
        return
    wanted = {secret["metadata"]["name"] for secret in secrets}
    for found in api.items("Secret", "v1", namespace=namespace, label_selector=selector(daemonset_name)):
        if found["metadata"]["name"] in wanted:
            continue
        gone = shown({**found, "metadata": {**found["metadata"], "namespace": namespace}})
        _delete(api, gone)
        masked_before, _masked = mask(found, None)
        outcomes.append(objs.Outcome(obj=gone, action=DELETED, before=masked_before, after=None))
