# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""When is a DaemonSet rolled out? Pure predicates over the objects the API returns.

Done means kubectl's rule (``kubectl rollout status``) holds, and every pod of
the current template is up with all its containers ready. kubernetes.core's
daemonset_ready is weaker: it never looks at numberAvailable.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import diagnosis, mode
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.kube import node_order, owned_by, owned_pods, selector_string, target_node

# Set by the DaemonSet controller: the annotation on the DaemonSet, the labels on its pods.
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
# On each ControllerRevision of the DaemonSet and on the pods made from it: the hash of its template.
REVISION_HASH_LABEL = "controller-revision-hash"


def rollout_status(daemonset: Mapping[str, Any]) -> tuple[bool, str]:
    """kubectl's DaemonSet rule: (done, what it waits for or a summary when done).

    observedGeneration >= generation, updatedNumberScheduled >= desired and
    numberAvailable >= desired. With the OnDelete strategy pods change only
    when someone deletes them, so the updated count is not waited for.
    """
    spec = daemonset.get("spec") or {}
    status = daemonset.get("status") or {}
    unobserved = generation_unobserved(daemonset)
    if unobserved:
        return False, unobserved
    desired = status.get("desiredNumberScheduled") or 0
    updated = status.get("updatedNumberScheduled") or 0
    available = status.get("numberAvailable") or 0
    on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
    if not on_delete and updated < desired:
        return False, f"{updated} of {desired} updated pods scheduled"
    if available < desired:
        return False, f"{available} of {desired} updated pods available"
    return True, f"{desired} of {desired} pods updated and available"


def generation_unobserved(daemonset: Mapping[str, Any]) -> str | None:
    """Why the status's counts are still those of an earlier template (the controller has not observed the current
    generation), or None when they are the current template's."""
    generation = (daemonset.get("metadata") or {}).get("generation")
    observed = (daemonset.get("status") or {}).get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return f"the DaemonSet controller has not yet observed generation {generation} (observed: {observed})"
    return None


def pod_is_updated(pod: Mapping[str, Any], daemonset: Mapping[str, Any], revision_hash: str | None = None) -> bool:
    """Whether the pod runs the DaemonSet's current template: the DaemonSet controller's rule.

    The controller stamps the template generation on the DaemonSet (annotation)
    and on each pod it creates (label); its metadata.generation also counts
    changes outside the template, so it is not the number to compare. A pod of
    an earlier generation is updated too when it carries the hash of the current
    revision (revision_hash, see current_revision_hash): after a template goes
    back to an earlier one, the pods still running that one are kept.
    """
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if revision_hash and labels.get(REVISION_HASH_LABEL) == revision_hash:
        return True
    generation = ((daemonset.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    return generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == str(generation)


def current_revision_hash(daemonset: Mapping[str, Any], revisions: Iterable[Mapping[str, Any]]) -> str | None:
    """The template hash of the DaemonSet's newest ControllerRevision (None: it has none, or they were not readable).

    Going back to an earlier template, the controller reuses that template's
    revision under a new, highest revision number.
    """
    own = [revision for revision in revisions if owned_by(revision, daemonset)]
    if not own:
        return None
    newest = max(own, key=lambda revision: revision.get("revision") or 0)
    return ((newest.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL)


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """Every container of the pod reports ready (init containers have then finished)."""
    spec_names = {c.get("name") for c in (pod.get("spec") or {}).get("containers") or []}
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    ready = {s.get("name") for s in statuses if s.get("ready")}
    return bool(spec_names) and spec_names <= ready


def daemonset_images(daemonset: Mapping[str, Any]) -> list[dict[str, str]]:
    """The containers of the pod template that cache an image, and their images, in order (init ones in init mode)."""
    return mode.daemonset_images(daemonset)


@dataclasses.dataclass(frozen=True)
class Readiness:
    """Where a rollout stands."""

    done: bool
    waiting_for: str
    pods: tuple  # the DaemonSet's own pods that are not terminating
    updated_pods: tuple
    not_ready_pods: tuple  # updated pods not (yet) ready
    summary: dict

    @property
    def missing_pods(self) -> int:
        """How many updated pods the controller still has to create."""
        return max(0, self.summary["desired"] - len(self.updated_pods))


def _status_counts(daemonset: Mapping[str, Any]) -> dict[str, Any]:
    """The DaemonSet status's pod counts and its images: the part of a summary that reads no pod."""
    status = daemonset.get("status") or {}
    return {
        "desired": status.get("desiredNumberScheduled") or 0,
        "current": status.get("currentNumberScheduled") or 0,
        "ready": status.get("numberReady") or 0,
        "updated": status.get("updatedNumberScheduled") or 0,
        "available": status.get("numberAvailable") or 0,
        "misscheduled": status.get("numberMisscheduled") or 0,
        "images": daemonset_images(daemonset),
    }


def summarize(daemonset: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], revision_hash: str | None = None) -> dict[str, Any]:
    """The figures of the DaemonSet status, its images and one entry per node."""
    nodes = [
        {
            "node": target_node(pod),
            "pod": (pod.get("metadata") or {}).get("name"),
            "phase": (pod.get("status") or {}).get("phase"),
            "ready": pod_is_ready(pod),
            "updated": pod_is_updated(pod, daemonset, revision_hash),
        }
        for pod in sorted(pods, key=node_order)
    ]
    return {
        **_status_counts(daemonset),
        "nodes": nodes,
    }


def _verdict(daemonset: Mapping[str, Any], pods: tuple, updated: tuple, not_ready: tuple, summary: dict[str, Any]) -> Readiness:
    """kubectl's rule on the status, then every updated pod ready and one per desired node."""
    done, waiting_for = rollout_status(daemonset)
    if done and not_ready:
        done, waiting_for = False, f"{len(not_ready)} updated pods have containers that are not ready"
    elif done and len(updated) < summary["desired"]:
        done, waiting_for = False, f"{len(updated)} of {summary['desired']} updated pods exist"
    return Readiness(done=done, waiting_for=waiting_for, pods=pods, updated_pods=updated, not_ready_pods=not_ready, summary=summary)


def evaluate(daemonset: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], revision_hash: str | None = None) -> Readiness:
    """kubectl's rule, and every updated pod of the DaemonSet is ready (one per desired node)."""
    own = tuple(owned_pods(pods, daemonset))
    on_delete = ((daemonset.get("spec") or {}).get("updateStrategy") or {}).get("type") == "OnDelete"
    # with OnDelete an old pod is as good as it gets until someone deletes it
    updated = own if on_delete else tuple(pod for pod in own if pod_is_updated(pod, daemonset, revision_hash))
    not_ready = tuple(pod for pod in updated if not pod_is_ready(pod))
    summary = summarize(daemonset, own, revision_hash)
    return _verdict(daemonset, own, updated, not_ready, summary)


# Pod phases, as opposed to the other words kubectl's STATUS column shows (ContainerCreating, ImagePullBackOff, ...).
POD_PHASES = frozenset({"Pending", "Running", "Succeeded", "Failed", "Unknown"})


def pod_rows(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pods of a server-side Table (what ``kubectl get pods`` prints) as name, node, status and ready counts.

    A row is a few dozen bytes whatever the number of containers, which is
    what lets the final confirmation stay cheap at 1,000 pods x 50 images.
    """
    names = [(column.get("name") or "").lower() for column in table.get("columnDefinitions") or []]
    rows = []
    for row in table.get("rows") or []:
        cells = dict(zip(names, row.get("cells") or []))
        ready_text = str(cells.get("ready") or "0/0")
        ready, _slash, total = ready_text.partition("/")
        node = cells.get("node")
        rows.append({
            "pod": cells.get("name"),
            "node": None if node in (None, "", "<none>") else node,
            "status": cells.get("status"),
            "ready": int(ready) if ready.isdigit() else 0,
            "total": int(total) if total.isdigit() else 0,
        })
    return rows


def revision_rows(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ControllerRevisions from a server-side Table with includeObject=Metadata, as current_revision_hash reads them
    (metadata and revision), without the pod template each one holds. A plain list (a server without Tables) as is."""
    if "rows" not in table:
        return list(table.get("items") or [])
    names = [(column.get("name") or "").lower() for column in table.get("columnDefinitions") or []]
    revisions = []
    for row in table.get("rows") or []:
        cells = dict(zip(names, row.get("cells") or []))
        number = cells.get("revision")
        revisions.append({"metadata": (row.get("object") or {}).get("metadata") or {},
                          "revision": number if isinstance(number, int) else int(number) if str(number).isdigit() else 0})
    return revisions


# What kubectl's STATUS column shows for a pod on its way up: nothing there for a diagnosis to explain.
# Anything else (ErrImagePull, ImagePullBackOff, Init:ImagePullBackOff, CrashLoopBackOff,
# CreateContainerConfigError, Error, Evicted, ...) is a reason the kubelet or the node gave.
QUIET_ROW_STATUSES = frozenset({"Running", "Pending", "ContainerCreating", "PodInitializing", "Terminating", "Completed"})
_INIT_PROGRESS = re.compile(r"Init:[0-9]+/[0-9]+")


def row_shows_problem(row: Mapping[str, Any]) -> bool:
    """Whether a pod's Table row shows something a diagnosis should read the pod for.

    A pod that is only on its way (Pending on a node, ContainerCreating, Init:0/1,
    Running with containers not ready yet) does not; a reason from the kubelet
    does, and so does a pod no node was found for (Pending without a node).
    """
    status = str(row.get("status") or "")
    if status == "Pending":
        return row.get("node") is None
    return status not in QUIET_ROW_STATUSES and not _INIT_PROGRESS.fullmatch(status)


# Waiting reasons kubectl's STATUS column shows (also as "Init:<reason>") for a pod whose containers are still to
# start or restart: a pod in phase Pending or Running. A finished pod (Succeeded or Failed) shows its own reason
# (Evicted, OutOfcpu, ...), a terminated container's (Completed, Error, OOMKilled, ExitCode:1, ...), or Terminating.
_WAITING_ROW_STATUSES = diagnosis.WAITING_PROBLEM_REASONS | frozenset({"ContainerCreating", "PodInitializing"})
_LIVE_ROW_STATUSES = frozenset({"Running", "Pending", "NotReady"}) | _WAITING_ROW_STATUSES


def row_is_surely_live(row: Mapping[str, Any]) -> bool:
    """Whether a pod's Table row rules out a finished pod (phase Succeeded or Failed), which quota no longer counts.

    When it does not (Completed, Error, Evicted, Terminating, Unknown, ...), only the pod itself can tell.
    """
    status = str(row.get("status") or "")
    if status.startswith("Init:"):
        rest = status[len("Init:"):]
        return rest in _WAITING_ROW_STATUSES or bool(_INIT_PROGRESS.fullmatch(status))
    return status in _LIVE_ROW_STATUSES


def _row_ready(row: Mapping[str, Any]) -> bool:
    return bool(row.get("total")) and row.get("ready") == row.get("total")


def template_generation(daemonset: Mapping[str, Any]) -> str | None:
    """The template generation the controller stamped on the DaemonSet (and puts on its updated pods)."""
    return ((daemonset.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)


def updated_selector(daemonset: Mapping[str, Any], revision_hash: str | None = None) -> str:
    """The label selector of the DaemonSet's pods of the current template (all its pods with OnDelete).

    By template generation, or by revision_hash when given: that also finds
    the pods of an earlier generation that run the current template (see
    pod_is_updated), and every pod the controller made for this generation.
    """
    selector = selector_string((daemonset.get("spec") or {}).get("selector"), what="spec.selector of the DaemonSet")
    on_delete = ((daemonset.get("spec") or {}).get("updateStrategy") or {}).get("type") == "OnDelete"
    generation = template_generation(daemonset)
    if on_delete or generation is None:
        return selector
    term = f"{REVISION_HASH_LABEL}={revision_hash}" if revision_hash else f"{TEMPLATE_GENERATION_LABEL}={generation}"
    return f"{selector},{term}" if selector else term


def confirm(daemonset: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> Readiness:
    """kubectl's rule and every pod of the current template ready, judged from the table rows of updated_selector().

    Rows are the DaemonSet's updated pods (by label); a terminating one does not count.
    """
    updated = tuple(sorted((row for row in rows if row.get("status") != "Terminating"),
                           key=lambda row: (row.get("node") or "", row.get("pod") or "")))
    not_ready = tuple(row for row in updated if not _row_ready(row))
    summary = {
        **_status_counts(daemonset),
        "nodes": [
            {"node": row.get("node"), "pod": row.get("pod"),
             "phase": row.get("status") if row.get("status") in POD_PHASES else None,
             "ready": _row_ready(row), "updated": True}
            for row in updated
        ],
    }
    return _verdict(daemonset, updated, updated, not_ready, summary)
