# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""Reads what the quota pre-flight needs from the cluster and runs it (image_puller_quota).

Only reads. Lists are paginated and read as raw JSON, keeping per node only its
name, labels and taints, so 5,000 nodes stay cheap in time and memory. The
current DaemonSet's pods are counted from the pod Table, with one pod per
revision read in full (current_pods). The arithmetic lives in quota.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.api import FIELD_MANAGER, read_table
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.apply import prepare_definition
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import api_error, connect_within, discover
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ApiError, ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.retry import Retrier
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.nodes import NodeInfo
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.kube import owned_by, selector_string
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quantity import QuantityError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quota import (
    PodTally,
    check_daemonset,
    combine,
    describe_shapes,
    failure_message,
    shape_needs,
)
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.readiness import (
    REVISION_HASH_LABEL,
    pod_rows,
    revision_rows,
    row_is_surely_live,
)

try:
    from kubernetes.dynamic.exceptions import DynamicApiError
except ImportError:  # the client is checked for by AnsibleK8SModule; this stand-in is never raised
    class DynamicApiError(Exception):  # type: ignore[no-redef]
        """Stand-in when the kubernetes client is missing."""

PAGE_SIZE = 500
# Pods of one revision whose Table status cannot tell their phase, read one by one; with more, the revision is listed in full.
PHASE_READS = 20
CLUSTER_QUOTA_API = "quota.openshift.io/v1"


class ClusterReader:
    """Paginated, raw reads of the objects the pre-flight compares."""

    def __init__(self, client: Any, *, page_size: int = PAGE_SIZE, retrier: Retrier | None = None) -> None:
        self._client = client
        self.dynamic = client.client
        self.page_size = page_size
        # without a retrier (deadline now) a transient failure fails at once
        self.retrier = retrier or Retrier(deadline=0.0, clock=lambda: 0.0)

    def resource(self, kind: str, api_version: str) -> Any | None:
        """The API resource, or None when the cluster does not serve it."""
        try:
            return self.retrier.call(f"could not discover {kind} ({api_version})", lambda: discover(self._client, kind, api_version))
        except DynamicApiError as exc:
            raise api_error(exc, f"discover {kind} ({api_version})") from exc

    def optional_items(self, kind: str, api_version: str, *, namespace: str | None = None) -> list[dict[str, Any]] | None:
        """The objects of an API the cluster may not serve, or None when it does not.

        A 404 for the whole list means discovery was stale: kubernetes.core caches it on disk per
        connection, so a cluster that lost an API at the same address still seems to have it.
        """
        if self.resource(kind, api_version) is None:
            return None
        try:
            return list(self.items(kind, api_version, namespace=namespace))
        except ApiError as exc:
            if not exc.not_found:
                raise
            self.dynamic.resources.invalidate_cache()
            return None

    def _required(self, kind: str, api_version: str) -> Any:
        found = self.resource(kind, api_version)
        if found is None:
            raise ImagePullerError(f"the cluster serves no {kind} ({api_version})")
        return found

    def items(self, kind: str, api_version: str, *, namespace: str | None = None, label_selector: str | None = None) -> Iterator[dict[str, Any]]:
        """Every object of a kind, page by page (limit + continue), as plain dicts."""
        resource = self._required(kind, api_version)
        token = None
        while True:
            try:
                response = self.retrier.call(f"could not list {kind} ({api_version})", lambda page_token=token: self.dynamic.get(
                    resource, namespace=namespace, label_selector=label_selector, limit=self.page_size, _continue=page_token, serialize=False))
            except DynamicApiError as exc:
                where = f" in namespace {namespace}" if namespace else ""
                raise api_error(exc, f"list {kind} ({api_version}){where}") from exc
            page = json.loads(response.data)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def first(self, kind: str, api_version: str, *, namespace: str | None = None, label_selector: str | None = None) -> dict[str, Any] | None:
        """One object of a kind (a list with limit 1, in full), or None when none is selected: what a sample needs,
        without the API server reading or converting the others."""
        resource = self._required(kind, api_version)
        try:
            response = self.retrier.call(f"could not list {kind} ({api_version})", lambda: self.dynamic.get(
                resource, namespace=namespace, label_selector=label_selector, limit=1, serialize=False))
        except DynamicApiError as exc:
            where = f" in namespace {namespace}" if namespace else ""
            raise api_error(exc, f"list {kind} ({api_version}){where}") from exc
        return next(iter(json.loads(response.data).get("items") or []), None)

    def tables(self, kind: str, api_version: str, *, namespace: str | None = None, label_selector: str | None = None,
               include_object: str = "None") -> Iterator[dict[str, Any]]:
        """Every object of a kind as server-side Table pages (api.read_table), page by page (limit + continue)."""
        resource = self._required(kind, api_version)
        token = None
        while True:
            try:
                page = self.retrier.call(f"could not list {kind} ({api_version})", lambda page_token=token: read_table(
                    self.dynamic, resource, namespace, labelSelector=label_selector, includeObject=include_object,
                    limit=self.page_size, **{"continue": page_token}))
            except DynamicApiError as exc:
                where = f" in namespace {namespace}" if namespace else ""
                raise api_error(exc, f"list {kind} ({api_version}){where}") from exc
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def pod_rows(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The selected pods as Table rows (readiness.pod_rows: name, node, status, ready counts): a few dozen bytes a
        pod whatever its number of containers."""
        return [row for page in self.tables("Pod", "v1", namespace=namespace, label_selector=label_selector) for row in pod_rows(page)]

    def revisions(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The selected ControllerRevisions' metadata and revision numbers (readiness.revision_rows), without the pod
        template each one holds."""
        return [revision for page in self.tables("ControllerRevision", "apps/v1", namespace=namespace, label_selector=label_selector,
                                                 include_object="Metadata") for revision in revision_rows(page)]

    def get(self, kind: str, api_version: str, name: str, *, namespace: str | None = None) -> dict[str, Any] | None:
        """One object, or None when it does not exist."""
        resource = self._required(kind, api_version)
        try:
            response = self.retrier.call(f"could not read {kind} {name}",
                                         lambda: self.dynamic.get(resource, name=name, namespace=namespace, serialize=False))
        except DynamicApiError as exc:
            error = api_error(exc, f"read {kind} {name}")
            if error.not_found:
                return None
            raise error from exc
        return json.loads(response.data)


def unchanged_result(definition: dict[str, Any], current: dict[str, Any], compare: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The result when applying the definition would not change the pod template: no pod and no resource is added.

    The shapes' needs are reckoned on the nodes the DaemonSet runs on, without the namespace's LimitRanges (not read).
    """
    namespace, name = definition["metadata"]["namespace"], definition["metadata"]["name"]
    eligible = ((current.get("status") or {}).get("desiredNumberScheduled")) or 0
    shapes = [shape_needs(item, nodes=eligible) for item in [definition, *(compare or [])]]
    summary = (f'DaemonSet "{name}" in namespace {namespace} already runs this pod template on {eligible} nodes: '
               "applying it adds no pod and no resource, so the quotas were not read")
    return {
        "fits": True, "unchanged": True, "daemonset": name, "namespace": namespace, "eligible_nodes": eligible,
        "nodes": {}, "footprint": {}, "footprint_explained": {}, "existing": None, "rows": [], "shortfalls": [],
        "messages": [summary] + (describe_shapes(shapes) if compare else []), "notes": [], "summary": summary, "shapes": shapes,
        "shape_lines": describe_shapes(shapes),
    }


def template_unchanged(reader: ClusterReader, definition: dict[str, Any]) -> dict[str, Any] | None:
    """The current DaemonSet when a server-side dry-run apply of the definition leaves its pod template as it is.

    The dry run fills in the server's defaults, so the templates compare exactly;
    a change of the selector (a re-create) or of the template is not unchanged.
    """
    namespace, name = definition["metadata"]["namespace"], definition["metadata"]["name"]
    current = reader.get("DaemonSet", "apps/v1", name, namespace=namespace)
    if current is None:
        return None
    resource = reader.resource("DaemonSet", "apps/v1")
    try:
        would_be = reader.retrier.call(f"could not dry-run apply DaemonSet {namespace}/{name}", lambda: json.loads(reader.dynamic.server_side_apply(
            resource, body=definition, namespace=namespace, field_manager=FIELD_MANAGER, force_conflicts=True,
            dry_run="All", serialize=False).data))
    except DynamicApiError:
        # not allowed to patch, or invalid: the full check says more than this shortcut can
        return None
    spec, live = would_be.get("spec") or {}, current.get("spec") or {}
    same = all(spec.get(key) == live.get(key) for key in ("template", "selector"))
    return current if same else None


def preflight_all(reader: ClusterReader, definitions: list[dict[str, Any]], *, skip_unchanged: bool = False,
                  compare: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The pre-flight of every DaemonSet of a deploy (one per architecture): each pod x its eligible nodes, summed
    per quota (each DaemonSet is checked against what the ones before it leave), as one result.

    compare: the other image_puller_mode's shape of each definition, in the same order (with one definition, any
    number of shapes of it); reported beside it, never checked."""
    compare = list(compare or [])
    if len(definitions) == 1:
        return preflight(reader, definitions[0], skip_unchanged=skip_unchanged, compare=compare)
    shapes = [[item] for item in compare] if len(compare) == len(definitions) else [[]] * len(definitions)
    earlier: dict = {}
    return combine([preflight(reader, definition, skip_unchanged=skip_unchanged, compare=other, earlier=earlier)
                    for definition, other in zip(definitions, shapes)])


def preflight(reader: ClusterReader, definition: dict[str, Any], *, skip_unchanged: bool = False,
              compare: list[dict[str, Any]] | None = None, earlier: dict | None = None) -> dict[str, Any]:
    """Read nodes, quotas, limit ranges, the current DaemonSet and its pods; return the check's result.

    skip_unchanged: when the DaemonSet already runs the definition's pod template, read nothing more (its cost then
    does not grow with the number of nodes). compare: other shapes of the DaemonSet whose needs are reported too.
    """
    namespace = definition["metadata"]["namespace"]
    name = definition["metadata"]["name"]
    notes: list[str] = []
    if skip_unchanged:
        current = template_unchanged(reader, definition)
        if current is not None:
            return unchanged_result(definition, current, compare)

    nodes = [NodeInfo.from_node(node) for node in reader.items("Node", "v1")]
    resource_quotas = list(reader.items("ResourceQuota", "v1", namespace=namespace))
    limit_ranges = list(reader.items("LimitRange", "v1", namespace=namespace))

    try:
        priority_classes = [pc for pc in reader.items("PriorityClass", "scheduling.k8s.io/v1") if pc.get("globalDefault")]
    except ApiError as exc:
        if not exc.forbidden:
            raise
        priority_classes = []
        notes.append("PriorityClasses not readable (forbidden): a global default priority class is not taken into account")

    namespace_object = None
    try:
        namespace_object = reader.get("Namespace", "v1", namespace)
        if namespace_object is None:
            notes.append(f"namespace {namespace} does not exist yet: it holds no ResourceQuota or LimitRange")
    except ApiError as exc:
        if not exc.forbidden:
            raise
        notes.append(f"namespace {namespace} not readable (forbidden)")

    cluster_quotas = None
    cluster_quotas_selected = False
    try:
        cluster_quotas = reader.optional_items("ClusterResourceQuota", CLUSTER_QUOTA_API)
    except ApiError as exc:
        if not exc.forbidden:
            raise
        # a project admin may not list cluster quotas but may list the ones applied to the project
        cluster_quotas = reader.optional_items("AppliedClusterResourceQuota", CLUSTER_QUOTA_API, namespace=namespace)
        cluster_quotas_selected = cluster_quotas is not None
        if cluster_quotas is None:
            cluster_quotas = []
            notes.append("ClusterResourceQuotas not readable (forbidden) and no AppliedClusterResourceQuota API: not checked")

    current = reader.get("DaemonSet", "apps/v1", name, namespace=namespace)
    tally = None if current is None else current_pods(reader, current)

    try:
        result = check_daemonset(
            definition, namespace=namespace, nodes=nodes, resource_quotas=resource_quotas, limit_ranges=limit_ranges,
            cluster_quotas=cluster_quotas, cluster_quotas_selected=cluster_quotas_selected, namespace_object=namespace_object,
            current_pods=tally, priority_classes=priority_classes, compare=compare or (), earlier=earlier,
        )
    except (QuantityError, ValueError) as exc:
        raise ImagePullerError(f'DaemonSet "{name}" in namespace {namespace}: {exc}') from exc
    result["notes"] = notes + result["notes"]
    result["messages"] += notes
    result["unchanged"] = False
    return result


def _all_of(*terms: str) -> str:
    return ",".join(term for term in terms if term)


def current_pods(reader: ClusterReader, daemonset: dict[str, Any]) -> PodTally:
    """What the DaemonSet's pods hold now, which an update in place gives back, without reading every pod in full.

    1,000 pods x 50 containers are 120 MB of JSON, most of it container statuses. The pod Table says how many pods each
    revision (the controller-revision-hash label) has, a few dozen bytes a pod; one pod per revision is read in full
    for the spec that quota counts. The DaemonSet controller makes every pod of a revision from the same template, so
    they count the same unless admission defaults (LimitRange, PriorityClass, RuntimeClass overhead) changed while the
    revision was rolled out. A pod whose Table status could be a finished pod's (quota no longer counts it) is read for
    its phase; so is, listed in full, any pod without the label and any revision with more than PHASE_READS of those.
    """
    metadata = daemonset.get("metadata") or {}
    namespace, name = metadata.get("namespace"), metadata.get("name")
    selector = selector_string((daemonset.get("spec") or {}).get("selector"), what=f"spec.selector of DaemonSet {namespace}/{name}")
    tally = PodTally()

    def count_in_full(label_selector: str) -> None:
        for pod in reader.items("Pod", "v1", namespace=namespace, label_selector=label_selector):
            if owned_by(pod, daemonset):
                tally.add(pod)

    count_in_full(_all_of(selector, f"!{REVISION_HASH_LABEL}"))
    seen: list[str] = []
    while True:
        others = f"{REVISION_HASH_LABEL} notin ({','.join(seen)})" if seen else ""
        sample = reader.first("Pod", "v1", namespace=namespace, label_selector=_all_of(selector, REVISION_HASH_LABEL, others))
        if sample is None:
            return tally  # no pod of another revision
        revision = ((sample.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL)
        if not revision:
            # an empty hash (not the DaemonSet controller's doing) names no revision to select by: count the rest in full
            count_in_full(_all_of(selector, REVISION_HASH_LABEL, others))
            return tally
        seen.append(revision)
        of_revision = _all_of(selector, f"{REVISION_HASH_LABEL}={revision}")
        members = [row for row in reader.pod_rows(namespace, of_revision) if row["pod"] != sample["metadata"]["name"]]
        unsure = [row for row in members if not row_is_surely_live(row)]
        if not owned_by(sample, daemonset) or len(unsure) > PHASE_READS:
            count_in_full(of_revision)
            continue
        tally.add(sample)
        tally.add(sample, times=len(members) - len(unsure), live=True)
        for row in unsure:
            pod = reader.get("Pod", "v1", row["pod"], namespace=namespace)
            if pod is not None and owned_by(pod, daemonset):
                tally.add(pod)


def run(module: Any) -> dict[str, Any]:
    """The image_puller_quota module: read, compare, and fail on a shortfall when asked to."""
    params = module.params
    definition = prepare_definition(params["definition"], params.get("namespace"))
    compare = [prepare_definition(item, definition["metadata"]["namespace"]) for item in params.get("compare_definitions") or []]
    client, retrier = connect_within(module)
    result = preflight(ClusterReader(client, retrier=retrier), definition, skip_unchanged=params["skip_unchanged"], compare=compare)
    result["changed"] = False
    if not result["fits"] and params["fail_on_insufficient"]:
        raise ImagePullerError(failure_message(result), **result)
    return result
