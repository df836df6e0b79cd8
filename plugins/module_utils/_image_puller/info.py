# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""What image_puller_info reports: per node and per image, and the summary every printer and playbook uses.

report() is pure: the DaemonSet, the nodes and the pods go in as plain dicts.
Eligibility is nodes.exclusion_reason, the code the quota pre-flight counts
with; ready and up to date are readiness's rules; the kubelet's reasons are
those diagnosis reports. summarize() is the one summary (a plain dict) that
the status playbook, the deploy's closing message and other collections'
playbooks read; describe() turns a report into lines for a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.diagnosis import MESSAGE_LINES, WAITING_PROBLEM_REASONS, problem_lines
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.kube import name_of, owned_pods, target_node
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.mode import daemonset_images, image_containers, template_of
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.nodes import NodeInfo, exclusion_reason, pod_tolerations, required_affinity_terms
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.readiness import pod_is_ready, pod_is_updated, rollout_status

# Image states, from the container status the kubelet writes.
WAITING = "waiting"    # nothing pulled yet: no pod, the pod is not scheduled, or its init container has not finished
PULLING = "pulling"    # the kubelet is pulling the image or creating the container from it (ContainerCreating)
RUNNING = "running"    # the container runs: the image is on the node
FAILED = "failed"      # the pull or the container failed; reason and message are the kubelet's
COMPLETED = "completed"  # image_puller_mode init: its init container ran and exited 0, so the image is on the node
STATES = (WAITING, PULLING, RUNNING, FAILED, COMPLETED)
# The kubelet reports at most this many images in a Node's status (--node-status-max-images), largest first.
NODE_STATUS_MAX_IMAGES = 50


def _image_entry(container: Mapping[str, Any], status: Mapping[str, Any] | None, *, init_done: bool,
                 init_problem: tuple[str, str] | None, init: bool = False) -> dict[str, Any]:
    """One image on one node: its state, the kubelet's reason and message, and the image ID it resolved.

    init: the image's container is an init container (image_puller_mode init); init_done then means
    every init container before it has finished, and init_problem is the first one stuck before it.
    """
    entry = {"container": container.get("name"), "image": container.get("image"), "state": WAITING,
             "reason": None, "message": None, "image_id": None, "cached": False}
    if status is None:
        if init_problem:
            entry["reason"], entry["message"] = init_problem
        return entry
    state = status.get("state") or {}
    # the kubelet sets imageID once the image is on the node (the container was created from it)
    entry["image_id"] = status.get("imageID") or None
    entry["cached"] = bool(entry["image_id"])
    if "running" in state:
        entry["state"] = RUNNING
        entry["cached"] = True
    elif "terminated" in state and init and (state["terminated"] or {}).get("exitCode") == 0:
        # it ran from the image, so the image was on the node (as for a running container)
        entry["state"] = COMPLETED
        entry["cached"] = True
    elif "terminated" in state:
        terminated = state["terminated"] or {}
        entry.update(state=FAILED, reason=terminated.get("reason") or "Terminated",
                     message=terminated.get("message") or f"exit code {terminated.get('exitCode')}")
    else:
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason")
        entry["reason"], entry["message"] = reason, waiting.get("message") or None
        if reason in WAITING_PROBLEM_REASONS:
            entry["state"] = FAILED
        elif init_done:
            entry["state"] = PULLING
        elif init_problem:
            entry["reason"], entry["message"] = init_problem
    return entry


def _init_state(pod: Mapping[str, Any], before: str | None = None) -> tuple[bool, tuple[str, str] | None]:
    """Whether every init container (before the one named `before`, when given) has finished,
    and the problem of the first that is stuck (reason, message)."""
    spec_inits = (pod.get("spec") or {}).get("initContainers") or []
    statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("initContainerStatuses") or []}
    for container in spec_inits:
        if before is not None and container.get("name") == before:
            break
        status = statuses.get(container.get("name")) or {}
        state = status.get("state") or {}
        terminated = state.get("terminated")
        if terminated and terminated.get("exitCode") == 0:
            continue
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in WAITING_PROBLEM_REASONS:
            return False, (waiting["reason"], f'init container "{container.get("name")}" ({container.get("image")}): '
                                              f'{waiting.get("message") or waiting["reason"]}')
        if terminated:
            return False, (terminated.get("reason") or "Error",
                           f'init container "{container.get("name")}" exited with code {terminated.get("exitCode")}')
        return False, None
    return True, None


def _unscheduled(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return condition.get("reason") or "Unschedulable", condition.get("message") or ""
    return None


def _node_image_names(node: Mapping[str, Any]) -> list[str]:
    return [name for image in (node.get("status") or {}).get("images") or [] for name in image.get("names") or []]


def _listed(entry: Mapping[str, Any], names: set[str]) -> bool:
    """Whether the node's image list names the image: by the reference given, or by the digest the kubelet resolved."""
    image, image_id = entry.get("image") or "", entry.get("image_id") or ""
    candidates = {image, image_id, image_id.split("://", 1)[-1]}
    if "/" not in image.split(":", 1)[0].split("@", 1)[0]:
        candidates.add(f"docker.io/library/{image}")
    digest = image_id.rpartition("@")[2] if "@" in image_id else ""
    return bool(candidates & names) or bool(digest and any(name.endswith("@" + digest) for name in names))


def report(daemonset: Mapping[str, Any] | None, nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
           *, node_images: bool = False, revision_hash: str | None = None) -> dict[str, Any]:
    """Per node: eligible or why not, its pod, ready, up to date, and per image its state; nodes by name.

    nodes are Node dicts (only name, labels, taints and, with node_images, status.images are read).
    revision_hash: the current ControllerRevision's (readiness.pod_is_updated).
    """
    if daemonset is None:
        return {"exists": False, "images": [], "nodes": []}
    pod_spec = template_of(daemonset).get("spec") or {}
    containers = image_containers(template_of(daemonset))
    tolerations, terms = pod_tolerations(pod_spec), required_affinity_terms(pod_spec)
    pods_by_node: dict[str | None, list[Mapping[str, Any]]] = {}
    for pod in owned_pods(pods, daemonset):
        pods_by_node.setdefault(target_node(pod), []).append(pod)
    entries = []
    for node in sorted(nodes, key=name_of):
        info = NodeInfo.from_node(dict(node))
        why_not = exclusion_reason(pod_spec, info, tolerations=tolerations, terms=terms)
        entry = _node_entry(daemonset, containers, info.name, pods_by_node.pop(info.name, []), why_not, revision_hash)
        if node_images:
            names = _node_image_names(node)
            entry["node_images_truncated"] = len((node.get("status") or {}).get("images") or []) >= NODE_STATUS_MAX_IMAGES
            for image in entry["images"]:
                image["listed"] = _listed(image, set(names))
        entries.append(entry)
    for node_name, stray in sorted(pods_by_node.items(), key=lambda item: item[0] or ""):
        # pods for a node that is gone, or for none at all
        entries.append(_node_entry(daemonset, containers, node_name, stray, "the node does not exist", revision_hash))
    return {"exists": True, "images": daemonset_images(daemonset), "nodes": entries}


def _node_entry(daemonset: Mapping[str, Any], containers: list[tuple[Mapping[str, Any], bool]], node: str | None,
                pods: list[Mapping[str, Any]], why_not: str | None, revision_hash: str | None) -> dict[str, Any]:
    # with several pods on one node (a rolling update), the up-to-date one speaks for it
    pods = sorted(pods, key=lambda pod: (not pod_is_updated(pod, daemonset, revision_hash), name_of(pod)))
    pod = pods[0] if pods else None
    entry: dict[str, Any] = {
        "node": node, "eligible": why_not is None, "not_eligible_because": why_not,
        "pod": name_of(pod) if pod else None,
        "phase": (pod.get("status") or {}).get("phase") if pod else None,
        "ready": pod_is_ready(pod) if pod else False,
        "updated": pod_is_updated(pod, daemonset, revision_hash) if pod else False,
    }
    pod_status = (pod or {}).get("status") or {}
    statuses = {(s.get("name"), False): s for s in pod_status.get("containerStatuses") or []}
    statuses.update({(s.get("name"), True): s for s in pod_status.get("initContainerStatuses") or []})
    # by name and kind: a pod of the other mode holds the same names as init containers or as containers
    pod_images = {(c.get("name"), init): c.get("image") for c, init in image_containers(pod)} if pod else {}
    pod_problem = _unscheduled(pod) if pod else None
    if pod is None and why_not is None:
        pod_problem = ("NoPod", "the DaemonSet controller has not created a pod for this node (see its FailedCreate events)")

    def one(container: Mapping[str, Any], init: bool) -> dict[str, Any]:
        key = (container.get("name"), init)
        if pod is not None and pod_images.get(key) != container.get("image"):
            return _replaced(container, pod_images.get(key))
        # an image in an init container waits only for the init containers before it
        init_done, init_problem = _init_state(pod, container.get("name") if init else None) if pod else (False, None)
        return _image_entry(container, statuses.get(key), init_done=init_done, init_problem=init_problem or pod_problem, init=init)

    entry["images"] = [one(container, init) for container, init in containers]
    return entry


def _replaced(container: Mapping[str, Any], running: str | None) -> dict[str, Any]:
    """An image of the template that the node's pod (of an earlier template) does not run."""
    message = (f"the pod on this node runs {running} instead; the DaemonSet replaces it" if running
               else "the pod on this node has no such container; the DaemonSet replaces it")
    return {"container": container.get("name"), "image": container.get("image"), "state": WAITING,
            "reason": "PreviousTemplate", "message": message, "image_id": None, "cached": False}


def summarize(result: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of a report: nodes ready out of eligible, images cached on every eligible node, what lacks where.

    A plain dict of plain values, documented as RV(summary) of image_puller_info.
    """
    nodes = result.get("nodes") or []
    images = [image["image"] for image in result.get("images") or []]
    eligible = [node for node in nodes if node["eligible"]]
    lacking = [
        {"node": node["node"], "container": image["container"], "image": image["image"], "state": image["state"],
         "reason": image["reason"], "message": image["message"]}
        for node in eligible for image in node["images"] if not image["cached"]
    ]
    lacking_images = {item["image"] for item in lacking}
    return {
        "exists": bool(result.get("exists")),
        "nodes": len(nodes),
        "eligible": len(eligible),
        "ready": sum(1 for node in eligible if node["ready"]),
        "updated": sum(1 for node in eligible if node["updated"]),
        "images": images,
        "cached_everywhere": [image for image in images if image not in lacking_images],
        "complete": bool(result.get("exists")) and not lacking,
        "fully_cached_nodes": [node["node"] for node in eligible if all(image["cached"] for image in node["images"])],
        "lacking": lacking,
    }


def combine_summaries(summaries: list[Mapping[str, Any]]) -> dict[str, Any]:
    """One summary for the DaemonSets of one instance (one per architecture, each on its own nodes)."""
    if len(summaries) == 1:
        return dict(summaries[0])
    images = list(dict.fromkeys(image for summary in summaries for image in summary["images"]))
    lacking = [item for summary in summaries for item in summary["lacking"]]
    lacking_images = {item["image"] for item in lacking}

    def total(key: str) -> int | None:
        values = [summary[key] for summary in summaries]
        return None if any(value is None for value in values) else sum(values)

    fully = [summary["fully_cached_nodes"] for summary in summaries]
    return {
        "exists": all(summary["exists"] for summary in summaries),
        # every report counts every node of the cluster
        "nodes": summaries[0]["nodes"],
        "eligible": total("eligible"),
        "ready": total("ready"),
        "updated": total("updated"),
        "images": images,
        "cached_everywhere": [image for image in images if image not in lacking_images],
        "complete": all(summary["complete"] for summary in summaries),
        "fully_cached_nodes": None if any(nodes is None for nodes in fully) else sorted({node for nodes in fully for node in nodes}),
        "lacking": lacking,
    }


def summary_from_status(daemonset: Mapping[str, Any]) -> dict[str, Any] | None:
    """The summary, read from the DaemonSet's status alone, when that says the rollout is complete; else None.

    Complete (readiness.rollout_status, kubectl's rule) means every eligible node runs a ready pod of the
    current template, so every image runs, and so is cached, on every eligible node: summarize(report(...))
    would say the same after reading every node and pod. A deploy that finds nothing to change ends with
    this, so its cost does not grow with the nodes. What only the nodes tell is None: nodes, fully_cached_nodes.
    """
    done = rollout_status(daemonset)[0]
    status = daemonset.get("status") or {}
    # OnDelete: done without replacing the pods, which may still run the previous template's images
    if not done or (status.get("updatedNumberScheduled") or 0) < (status.get("desiredNumberScheduled") or 0):
        return None
    images = [item["image"] for item in daemonset_images(daemonset)]
    return {
        "exists": True,
        "nodes": None,
        "eligible": int(status.get("desiredNumberScheduled") or 0),
        "ready": int(status.get("numberReady") or 0),
        "updated": int(status.get("updatedNumberScheduled") or 0),
        "images": images,
        "cached_everywhere": list(images),
        "complete": True,
        "fully_cached_nodes": None,
        "lacking": [],
    }


def _image_text(image: Mapping[str, Any]) -> str:
    text = f'{image["container"]} ({image["image"]}): {image["state"]}'
    if image.get("reason"):
        text += f': {image["reason"]}'
    if image.get("message"):
        text += f': {image["message"]}'
    return text


def headline(summary: Mapping[str, Any], *, name: str, namespace: str) -> str:
    """One line: nodes ready out of eligible, images cached on every eligible node."""
    ref = f"DaemonSet {namespace}/{name}"
    if not summary["exists"]:
        return f"{ref}: not found"
    return (f'{ref}: {summary["ready"]}/{summary["eligible"]} eligible nodes ready, {summary["updated"]} up to date; '
            f'{len(summary["cached_everywhere"])}/{len(summary["images"])} images cached on every eligible node'
            + ("" if summary["complete"] else f'; {len(summary["lacking"])} missing (image, node) pairs'))


def describe_summary(summary: Mapping[str, Any], *, name: str, namespace: str, limit: int = MESSAGE_LINES) -> list[str]:
    """The headline, then one line per image an eligible node lacks (what a deploy ends with), at most limit of them
    and then a line that says how many more (summary.lacking holds them all): at 1,000 nodes x 50 images mid-rollout
    there are 50,000 pairs, which no job log should print."""
    lacking = summary["lacking"]
    shown = lacking[:limit]
    lines = [headline(summary, name=name, namespace=namespace)] + [f'{item["node"]}: {_image_text(item)}' for item in shown]
    if len(shown) < len(lacking):
        lines.append(f"... and {len(lacking) - len(shown)} more missing (image, node) pairs: "
                     f"ansible-playbook kip.image_puller.status lists every node")
    return lines


def describe_progress(status: Mapping[str, Any], problems: list[Mapping[str, Any]], *, name: str, namespace: str,
                      unobserved: str | None = None) -> list[str]:
    """A rollout not waited for, from what the look at it read (the DaemonSet's status counts, the problems it
    found): one headline, then the problems (at most MESSAGE_LINES). Which image is cached where takes every pod in
    full (tens of megabytes at 1,000 nodes x 50 images), which the status playbook reads.

    unobserved: readiness.generation_unobserved of the DaemonSet; the counts are then the previous template's (all
    up to date, until the controller takes up the new one), so they are left out."""
    progress = unobserved or f'{status["ready"]}/{status["desired"]} nodes ready, {status["updated"]} up to date'
    headline_text = (f'DaemonSet {namespace}/{name}: rollout under way, not waited for: {progress}; '
                     f'ansible-playbook kip.image_puller.status shows each node and image')
    return [headline_text] + problem_lines(problems)


def describe(result: Mapping[str, Any], summary: Mapping[str, Any], *, name: str, namespace: str) -> list[str]:
    """The report for a person: the headline, one line per node, then each image a node lacks and why."""
    lines = [headline(summary, name=name, namespace=namespace)]
    for node in result.get("nodes") or []:
        if not node["eligible"]:
            lines.append(f'{node["node"] or "(no node)"}: not eligible: {node["not_eligible_because"]}'
                         + (f' (pod {node["pod"]})' if node["pod"] else ""))
            continue
        cached = sum(1 for image in node["images"] if image["cached"])
        state = "ready" if node["ready"] else "not ready"
        pod = f'pod {node["pod"]}, {state}{"" if node["updated"] or not node["pod"] else ", previous template"}' if node["pod"] else "no pod"
        lines.append(f'{node["node"]}: {pod}; {cached}/{len(node["images"])} images cached')
        lines.extend(f"  {_image_text(image)}" for image in node["images"] if not image["cached"])
    return lines
