# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""The objects a DaemonSet needs around it, applied in the same module run: its namespace, then the others.

One run of image_puller_daemonset can server-side apply the namespace, the
ConfigMap, the ServiceAccount, the RBAC and the NetworkPolicy before the
DaemonSet, so a deploy loads the Kubernetes client once instead of once per
object. The pure rules come first (which namespace labels may be written,
what a check-mode run can show); ObjectApi holds the cluster verbs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.apply import make_diff, has_changed
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import api_error
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.preflight import ClusterReader
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.retry import Retrier

try:
    from kubernetes.dynamic.exceptions import DynamicApiError
except ImportError:  # the client is checked for by AnsibleK8SModule
    DynamicApiError = Exception

MANAGED_BY = "app.kubernetes.io/managed-by"
POD_SECURITY_PREFIX = "pod-security.kubernetes.io/"
# Kinds applied elsewhere or never here: Secrets would put their data in the task's arguments and result.
REFUSED_KINDS = {
    "Secret": "Secrets are not applied by this module (their data would show in its arguments and result); "
              "use kubernetes.core.k8s with no_log",
    "DaemonSet": "the DaemonSet goes in the option definition, not in objects",
    "Namespace": "the namespace goes in the option namespace_definition, not in objects",
}

# What the module did, or would do, with each object.
CREATED, UPDATED, UNCHANGED, LABELLED, WOULD_CREATE = "created", "updated", "unchanged", "labelled (pod security only)", "would be created"


def ref(obj: Mapping[str, Any]) -> str:
    """Kind/namespace/name, for messages and diff headers."""
    metadata = obj.get("metadata") or {}
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj.get('kind')}/{where}{metadata.get('name')}"


def check_objects(objects: Any, namespace: str) -> list[dict[str, Any]]:
    """Copies of the objects to apply, in order; errors name the object and what to fix, before any write.

    A namespaced object without metadata.namespace gets the DaemonSet's (namespace): which
    kinds are namespaced is the server's to say, so the default is filled in later by apply().
    """
    if not isinstance(objects, list):
        raise ImagePullerError(f"objects must be a list of Kubernetes objects, got {type(objects).__name__}")
    checked = []
    for index, obj in enumerate(objects):
        where = f"objects[{index}]"
        if not isinstance(obj, Mapping):
            raise ImagePullerError(f"{where} must be a Kubernetes object (a dictionary), got {type(obj).__name__}")
        obj = copy.deepcopy(dict(obj))
        missing = [key for key in ("apiVersion", "kind") if not obj.get(key)]
        if missing or not (obj.get("metadata") or {}).get("name"):
            raise ImagePullerError(f"{where} needs apiVersion, kind and metadata.name, got {json.dumps(obj, sort_keys=True)[:200]}")
        if obj["kind"] in REFUSED_KINDS:
            raise ImagePullerError(f"{where} ({ref(obj)}): {REFUSED_KINDS[obj['kind']]}")
        own = obj["metadata"].get("namespace")
        if own and own != namespace:
            raise ImagePullerError(f"{where} ({ref(obj)}) is in namespace {own!r}, not in the DaemonSet's namespace {namespace!r}")
        obj.pop("status", None)
        checked.append(obj)
    return checked


def namespace_body(definition: Mapping[str, Any], live: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """What to apply to the namespace, and why: (body, action); body None means leave it alone.

    A namespace that does not exist yet, or that carries the definition's
    app.kubernetes.io/managed-by label (the one this definition made), gets the
    whole definition. One that someone else made only gets the definition's
    pod-security.kubernetes.io/* labels (none: it is left alone), so its owner's
    labels and annotations stay theirs.
    """
    body = copy.deepcopy(dict(definition))
    body.setdefault("apiVersion", "v1")
    body.setdefault("kind", "Namespace")
    body.pop("status", None)
    if live is None:
        return body, CREATED
    labels = (body.get("metadata") or {}).get("labels") or {}
    live_labels = (live.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY) and live_labels.get(MANAGED_BY) == labels.get(MANAGED_BY):
        return body, UPDATED
    pod_security = {key: value for key, value in labels.items() if key.startswith(POD_SECURITY_PREFIX)}
    if not pod_security:
        return None, UNCHANGED
    return {"apiVersion": body["apiVersion"], "kind": body["kind"], "metadata": {"name": body["metadata"]["name"], "labels": pod_security}}, LABELLED


@dataclasses.dataclass
class Outcome:
    """One object: what was (or would be) done, and the object before and after."""

    obj: dict[str, Any]
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def changed(self) -> bool:
        return self.action == WOULD_CREATE or (self.action != UNCHANGED and has_changed(self.before, self.after))

    def report(self) -> dict[str, Any]:
        """The entry of the module's objects result."""
        metadata = self.obj.get("metadata") or {}
        action = self.action
        if action in (UPDATED, LABELLED) and not self.changed:
            action = UNCHANGED
        return {"kind": self.obj.get("kind"), "name": metadata.get("name"), "namespace": metadata.get("namespace"),
                "changed": self.changed, "action": action}

    def diff(self) -> dict[str, Any]:
        """Ansible's diff of this object, headed by its reference."""
        return {**make_diff(self.before, self.after), "before_header": ref(self.obj), "after_header": ref(self.obj)}


class ObjectApi(ClusterReader):
    """ClusterReader's reads (discovery, get), plus the server-side apply and merge patch of any object.

    Retried through outages by the same retrier; API errors become errors.ApiError (client.api_error).
    """

    def __init__(self, client: Any, *, field_manager: str, retrier: Retrier) -> None:
        super().__init__(client, retrier=retrier)
        self.field_manager = field_manager
        self.dry_run = bool(getattr(client, "dry_run", False))

    def _dry_run(self) -> dict[str, str]:
        return {"dry_run": "All"} if self.dry_run else {}

    def resource_of(self, obj: Mapping[str, Any]) -> Any:
        """The API resource of the object; an error naming it when the cluster does not serve its kind."""
        resource = self.resource(obj["kind"], obj["apiVersion"])
        if resource is None:
            raise ImagePullerError(f"{ref(obj)}: the cluster serves no {obj['kind']} in {obj['apiVersion']}")
        return resource

    def read(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """The live object, or None when there is none."""
        metadata = obj["metadata"]
        return self.get(obj["kind"], obj["apiVersion"], metadata["name"], namespace=metadata.get("namespace"))

    def apply(self, resource: Any, obj: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self.retrier.call(f"{ref(obj)}: could not apply it", lambda: self.dynamic.server_side_apply(
                resource, body=dict(obj), namespace=(obj.get("metadata") or {}).get("namespace"), field_manager=self.field_manager,
                force_conflicts=True, serialize=False, **self._dry_run()))
        except DynamicApiError as exc:
            raise api_error(exc, "apply it (server-side apply)", subject=ref(obj)) from exc
        return json.loads(response.data)

    def merge_patch(self, resource: Any, obj: Mapping[str, Any], patch: dict[str, Any], *, field_manager: str, action: str) -> None:
        metadata = obj["metadata"]
        try:
            self.retrier.call(f"{ref(obj)}: could not {action}", lambda: self.dynamic.patch(
                resource, body=patch, name=metadata["name"], namespace=metadata.get("namespace"),
                content_type="application/merge-patch+json", field_manager=field_manager, **self._dry_run()))
        except DynamicApiError as exc:
            raise api_error(exc, action, subject=ref(obj)) from exc


def read_namespace(api: ObjectApi, definition: Mapping[str, Any]) -> dict[str, Any] | None:
    """The live namespace the definition names, or None when there is none."""
    return api.read({"apiVersion": "v1", "kind": "Namespace", **dict(definition)})


def apply_namespace(api: ObjectApi, definition: Mapping[str, Any], live: dict[str, Any] | None) -> Outcome:
    """Create the namespace, update the one this definition made, or only label someone else's for Pod Security."""
    body, action = namespace_body(definition, live)
    if body is None:
        return Outcome(obj=dict(definition, kind="Namespace"), action=UNCHANGED, before=live, after=live)
    after = api.apply(api.resource_of(body), body)
    return Outcome(obj=body, action=action, before=live, after=after)


def apply_objects(api: ObjectApi, objects: list[dict[str, Any]], *, namespace: str, namespace_pending: bool,
                  outcomes: list[Outcome]) -> list[Outcome]:
    """Server-side apply each object in order, appending to outcomes; each one is read first, for changed and the diff.

    namespace_pending: check mode and the namespace does not exist yet, so the server
    cannot dry-run objects in it: they are reported as would be created, as given.
    On a failure, outcomes holds what was applied before it.
    """
    for obj in objects:
        resource = api.resource_of(obj)
        if getattr(resource, "namespaced", False):
            obj.setdefault("metadata", {}).setdefault("namespace", namespace)
        else:
            obj["metadata"].pop("namespace", None)
        if namespace_pending and obj["metadata"].get("namespace"):
            outcomes.append(Outcome(obj=obj, action=WOULD_CREATE, before=None, after=obj))
            continue
        before = api.read(obj)
        after = api.apply(resource, obj)
        outcomes.append(Outcome(obj=obj, action=CREATED if before is None else UPDATED, before=before, after=after))
    return outcomes


RESTART_ANNOTATION = "image-puller.kip/refreshed-at"
# A field manager of its own: the server-side apply of the definition neither owns nor removes the annotation.
RESTART_FIELD_MANAGER = "kip.image_puller-restart"


def restart_patch(now: str) -> dict[str, Any]:
    """The pod-template annotation whose change rolls every pod, as `kubectl rollout restart` writes its own."""
    return {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: now}}}}}


def restart_daemonset(api: ObjectApi, definition: Mapping[str, Any], now: str) -> bool:
    """Roll every pod of the existing DaemonSet now (a merge patch); False when there is no DaemonSet yet."""
    if api.read(definition) is None:
        # a DaemonSet created by this run starts new pods, which pull every image anyway
        return False
    api.merge_patch(api.resource_of(definition), definition, restart_patch(now), field_manager=RESTART_FIELD_MANAGER, action="restart its pods")
    return True
