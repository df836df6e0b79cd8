# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""The cluster verbs for one DaemonSet and its pods; no decisions are made here.

Objects go in and come out as plain dicts. API errors become ImagePullerError
with the API server's own message and what was being done.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import api_error_message, api_status
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError

try:
    from kubernetes.dynamic.exceptions import DynamicApiError
except ImportError:  # the client is checked for by AnsibleK8SModule
    DynamicApiError = Exception

FIELD_MANAGER = "kip.image_puller"
DRY_RUN_ALL = "All"
# A watch that broke without telling why is retried after this pause, never in a tight loop.
BROKEN_WATCH_PAUSE = 1.0


class DaemonSetApi:
    """get / apply / delete one DaemonSet; list and watch it, its pods and its events."""

    def __init__(self, client: Any, *, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name
        self.dry_run = bool(getattr(client, "dry_run", False))
        self._dynamic = client.client
        with self._errors("find the DaemonSet, Pod and Event APIs"):
            self._daemonsets = client.resource("DaemonSet", "apps/v1")
            self._pods = client.resource("Pod", "v1")
            self._events = client.resource("Event", "v1")

    @property
    def ref(self) -> str:
        return f"DaemonSet {self.namespace}/{self.name}"

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except DynamicApiError as exc:
            raise ImagePullerError(f"{self.ref}: could not {action}: {api_error_message(exc)}") from exc

    def _dry_run(self) -> dict[str, str]:
        return {"dry_run": DRY_RUN_ALL} if self.dry_run else {}

    def get(self) -> dict[str, Any] | None:
        """The DaemonSet, or None when there is none."""
        try:
            return self._dynamic.get(self._daemonsets, name=self.name, namespace=self.namespace).to_dict()
        except DynamicApiError as exc:
            if api_status(exc) == 404:
                return None
            raise ImagePullerError(f"{self.ref}: could not read it: {api_error_message(exc)}") from exc

    def apply(self, definition: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply under our field manager; forced, so the fields we set are ours."""
        with self._errors("apply it (server-side apply)"):
            return self._dynamic.server_side_apply(
                self._daemonsets, body=definition, namespace=self.namespace,
                field_manager=FIELD_MANAGER, force_conflicts=True, **self._dry_run(),
            ).to_dict()

    def delete(self, *, uid: str | None = None) -> dict[str, Any] | None:
        """Delete in the foreground: the object stays, marked, until its pods are gone. None if it was already gone."""
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}
        if uid:
            # never delete a DaemonSet that someone created again meanwhile
            options["preconditions"] = {"uid": uid}
        if self.dry_run:
            # with a body the API server reads DeleteOptions from it alone, ignoring the dryRun query parameter
            options["dryRun"] = [DRY_RUN_ALL]
        try:
            response = self._dynamic.delete(self._daemonsets, name=self.name, namespace=self.namespace, body=options)
        except DynamicApiError as exc:
            if api_status(exc) == 404:
                return None
            raise ImagePullerError(f"{self.ref}: could not delete it: {api_error_message(exc)}") from exc
        return response.to_dict() if hasattr(response, "to_dict") else None

    def list_pods(self, selector: str) -> tuple[list[dict[str, Any]], str | None]:
        """The pods the selector matches, and the list's resourceVersion to watch from."""
        with self._errors(f"list its pods ({selector})"):
            listing = self._dynamic.get(self._pods, namespace=self.namespace, label_selector=selector).to_dict()
        return listing.get("items") or [], (listing.get("metadata") or {}).get("resourceVersion")

    def list_events(self) -> list[dict[str, Any]]:
        """The events about the DaemonSet (the controller's FailedCreate, for instance)."""
        selector = f"involvedObject.kind=DaemonSet,involvedObject.name={self.name}"
        with self._errors("list its events"):
            return self._dynamic.get(self._events, namespace=self.namespace, field_selector=selector).to_dict().get("items") or []

    def watch_daemonset(self, resource_version: str | None, seconds: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) of the DaemonSet's changes after resource_version, for at most seconds."""
        return self._watch(self._daemonsets, f"watch {self.ref}", resource_version, seconds, field_selector=f"metadata.name={self.name}")

    def watch_pods(self, selector: str, resource_version: str | None, seconds: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, object) of changes of the selected pods after resource_version, for at most seconds."""
        return self._watch(self._pods, f"watch the pods of {self.ref}", resource_version, seconds, label_selector=selector)

    def _watch(self, resource: Any, action: str, resource_version: str | None, seconds: int, **selectors: str) -> Iterator[tuple[str, dict[str, Any]]]:
        stream = self._dynamic.watch(resource, namespace=self.namespace, resource_version=resource_version,
                                     timeout=max(1, int(seconds)), **selectors)
        try:
            with contextlib.closing(stream):
                for event in stream:
                    yield event.get("type"), event.get("raw_object") or {}
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # an ApiException (the watch turns ERROR events into one) or a dropped connection
            status = api_status(exc)
            if status in (401, 403):
                raise ImagePullerError(f"could not {action}: {api_error_message(exc)}") from exc
            if status != 410:
                # 410 Gone only means the resourceVersion is too old; anything else gets a pause before the caller lists again
                time.sleep(BROKEN_WATCH_PAUSE)
