# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""The cluster verbs for one DaemonSet and its pods; no decisions are made here.

Objects go in and come out as plain dicts. API errors become errors.ApiError
(client.api_error) with the API server's own message, its HTTP status and what was being done. Every call is
retried through the API server going away (retry.Retrier): reads, the
server-side apply and the uid-guarded delete give the same outcome when repeated.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import api_error, api_status, discover
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ApiError, ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.kube import selector_string
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.readiness import current_revision_hash, revision_rows
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.retry import Retrier, is_transient
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.names import FIELD_MANAGER

try:
    from kubernetes import watch
    from kubernetes.dynamic.exceptions import DynamicApiError
except ImportError:  # the client is checked for by AnsibleK8SModule
    DynamicApiError = Exception

DRY_RUN_ALL = "All"
# A watch that broke without telling why is retried after this pause, never in a tight loop.
BROKEN_WATCH_PAUSE = 1.0
# The server renders the list as rows of a few columns; plain JSON only if it cannot.
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
T = TypeVar("T")


def read_table(dynamic: Any, resource: Any, namespace: str | None, **query: Any) -> dict[str, Any]:
    """One page of a list as the server-side Table kubectl prints: a few cells per object instead of the object.

    query: labelSelector, includeObject (None, or Metadata for each row's object metadata), limit, continue.
    The dynamic client knows no includeObject parameter, so the query is written here.
    """
    path = f"{resource.path(namespace=namespace)}?{urllib.parse.urlencode({k: v for k, v in query.items() if v not in (None, '')})}"
    return json.loads(dynamic.request("get", path, header_params={"Accept": TABLE_ACCEPT}, serialize=False).data)


class DaemonSetApi:
    """get / apply / delete one DaemonSet; list and watch it, its pods and its events."""

    def __init__(self, client: Any, *, namespace: str, name: str, retrier: Retrier | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self.dry_run = bool(getattr(client, "dry_run", False))
        self._client = client
        self._dynamic = client.client
        # without a retrier (deadline now) a transient failure fails at once
        self.retrier = retrier or Retrier(deadline=0.0, clock=lambda: 0.0)
        self._daemonsets = self._resource("DaemonSet", "apps/v1")
        self._pods = self._resource("Pod", "v1")
        self._events = self._resource("Event", "v1")

    @property
    def ref(self) -> str:
        return f"DaemonSet {self.namespace}/{self.name}"

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except ImagePullerError:
            raise
        except DynamicApiError as exc:
            raise api_error(exc, action, subject=self.ref) from exc

    def _call(self, action: str, function: Callable[[], T]) -> T:
        """function() through the retrier; an API error that is not transient names the action."""
        with self._errors(action):
            return self.retrier.call(f"{self.ref}: could not {action}", function)

    def _resource(self, kind: str, api_version: str) -> Any:
        found = self._call(f"find the {kind} API", lambda: discover(self._client, kind, api_version))
        if found is None:
            raise ImagePullerError(f"the cluster serves no {kind} ({api_version})")
        return found

    def _dry_run(self) -> dict[str, str]:
        return {"dry_run": DRY_RUN_ALL} if self.dry_run else {}

    def _unless_gone(self, action: str, function: Callable[[], T]) -> T | None:
        """function() as _call does it, but None when the DaemonSet is not there (404)."""
        try:
            return self._call(action, function)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    # Objects are read as raw JSON (serialize=False): the dynamic client's ResourceInstance wraps every field of
    # a DaemonSet of 50 containers in an object of its own, which at a status change a second cost more CPU than
    # the whole rollout's other work in this process.
    def get(self) -> dict[str, Any] | None:
        """The DaemonSet, or None when there is none."""
        return self._unless_gone("read it", lambda: json.loads(self._dynamic.get(
            self._daemonsets, name=self.name, namespace=self.namespace, serialize=False).data))

    def apply(self, definition: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply under our field manager; forced, so the fields we set are ours."""
        return self._call("apply it (server-side apply)", lambda: json.loads(self._dynamic.server_side_apply(
            self._daemonsets, body=definition, namespace=self.namespace,
            field_manager=FIELD_MANAGER, force_conflicts=True, serialize=False, **self._dry_run(),
        ).data))

    def delete(self, *, uid: str | None = None) -> dict[str, Any] | None:
        """Delete in the foreground: the object stays, marked, until its pods are gone. None if it was already gone."""
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}
        if uid:
            # never delete a DaemonSet that someone created again meanwhile
            options["preconditions"] = {"uid": uid}
        if self.dry_run:
            # with a body the API server reads DeleteOptions from it alone, ignoring the dryRun query parameter
            options["dryRun"] = [DRY_RUN_ALL]
        response = self._unless_gone("delete it", lambda: self._dynamic.delete(
            self._daemonsets, name=self.name, namespace=self.namespace, body=options))
        if response is None:
            return None
        return response.to_dict() if hasattr(response, "to_dict") else None

    def list_pods(self, selector: str) -> tuple[list[dict[str, Any]], str | None]:
        """The pods the selector matches, and the list's resourceVersion to watch from."""
        listing = self._call(f"list its pods ({selector})", lambda: json.loads(self._dynamic.get(
            self._pods, namespace=self.namespace, label_selector=selector, serialize=False).data))
        return listing.get("items") or [], (listing.get("metadata") or {}).get("resourceVersion")

    def get_pod(self, name: str) -> dict[str, Any] | None:
        """One pod in full, or None when it is gone."""
        try:
            return self._call(f"read its pod {name}", lambda: json.loads(self._dynamic.get(
                self._pods, name=name, namespace=self.namespace, serialize=False).data))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    def pod_table(self, selector: str) -> dict[str, Any]:
        """The selected pods as the server-side Table kubectl prints (name, ready count, status, node), without the objects."""
        return self._call(f"list its pods ({selector})", lambda: read_table(
            self._dynamic, self._pods, self.namespace, labelSelector=selector, includeObject="None"))

    def revision_hash(self, daemonset: dict[str, Any]) -> str | None:
        """The template hash of the DaemonSet's current ControllerRevision (readiness.current_revision_hash).

        None when the deployer may not list ControllerRevisions: the pods are then
        matched by template generation alone. Read as a Table with each row's
        metadata (readiness.revision_rows): a revision holds a whole pod
        template, 120 kB at 50 images, and the DaemonSet keeps up to ten.
        """
        selector = selector_string((daemonset.get("spec") or {}).get("selector"))
        try:
            revisions = self._call("find the ControllerRevision API", lambda: discover(self._client, "ControllerRevision", "apps/v1"))
            if revisions is None:
                return None
            table = self._call(f"list its ControllerRevisions ({selector})", lambda: read_table(
                self._dynamic, revisions, self.namespace, labelSelector=selector, includeObject="Metadata"))
        except ApiError as exc:
            if exc.forbidden or exc.not_found:
                return None
            raise
        return current_revision_hash(daemonset, revision_rows(table))

    def list_events(self) -> list[dict[str, Any]]:
        """The events about the DaemonSet (the controller's FailedCreate, for instance)."""
        selector = f"involvedObject.kind=DaemonSet,involvedObject.name={self.name}"
        listing = self._call("list its events", lambda: json.loads(self._dynamic.get(
            self._events, namespace=self.namespace, field_selector=selector, serialize=False).data))
        return listing.get("items") or []

    def watch_daemonset(self, resource_version: str | None, seconds: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) of the DaemonSet's changes after resource_version, for at most seconds."""
        return self._watch(self._daemonsets, f"watch {self.ref}", resource_version, seconds, field_selector=f"metadata.name={self.name}")

    def watch_pods(self, selector: str, resource_version: str | None, seconds: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) of changes of the selected pods after resource_version, for at most seconds."""
        return self._watch(self._pods, f"watch the pods of {self.ref}", resource_version, seconds, label_selector=selector)

    @staticmethod
    def _watch_events(resource: Any, **params: Any) -> Iterator[dict[str, Any]]:
        """The events of one watch request, each object as raw JSON (raw_object).

        The client's Watch, not DynamicClient.watch, which also wraps each event's object in a ResourceInstance.
        """
        return watch.Watch().stream(resource.get, serialize=False, **params)

    def _watch(self, resource: Any, action: str, resource_version: str | None, seconds: int, **selectors: str) -> Iterator[tuple[str, dict[str, Any]]]:
        stream = self._watch_events(resource, namespace=self.namespace, resource_version=resource_version,
                                    timeout_seconds=max(1, int(seconds)), **selectors)
        try:
            with contextlib.closing(stream):
                for event in stream:
                    self.retrier.ok()
                    yield event.get("type"), event.get("raw_object") or {}
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # an ApiException (the watch turns ERROR events into one) or a dropped connection
            status = api_status(exc)
            if status in (401, 403):
                raise api_error(exc, action) from exc
            if is_transient(exc):
                self.retrier.failed(exc)
            if status != 410:
                # 410 Gone only means the resourceVersion is too old; anything else gets a pause before the caller lists again
                self.retrier.sleep(min(BROKEN_WATCH_PAUSE, self.retrier.remaining()))
