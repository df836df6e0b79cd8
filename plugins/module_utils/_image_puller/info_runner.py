# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""What image_puller_info does: read the DaemonSet, the nodes and its pods, and report (info.report).

Only reads. Nodes and pods are listed in pages; per node only its name, labels,
taints (and, when asked for, its image names) are kept.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import info
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import connect_within
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ApiError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.kube import selector_string
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.preflight import ClusterReader
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.readiness import current_revision_hash
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.names import derived_names


def _small_node(node: dict[str, Any], *, images: bool) -> dict[str, Any]:
    metadata = node.get("metadata") or {}
    small = {"metadata": {"name": metadata.get("name"), "labels": metadata.get("labels") or {}},
             "spec": {"taints": (node.get("spec") or {}).get("taints") or []}}
    if images:
        small["status"] = {"images": [{"names": image.get("names") or []} for image in (node.get("status") or {}).get("images") or []]}
    return small


def _revision_hash(reader: ClusterReader, daemonset: dict[str, Any], *, namespace: str, selector: str) -> str | None:
    """readiness.current_revision_hash from the DaemonSet's ControllerRevisions; None when they may not be listed."""
    try:
        revisions = reader.revisions(namespace, selector)
    except ApiError as exc:
        if not exc.forbidden:
            raise
        return None
    return current_revision_hash(daemonset, revisions)


def read(reader: ClusterReader, *, name: str, namespace: str, node_images: bool = False) -> dict[str, Any]:
    """The report (info.report) with its summary (info.summarize) for DaemonSet namespace/name."""
    daemonset = reader.get("DaemonSet", "apps/v1", name, namespace=namespace)
    if daemonset is None:
        result = info.report(None, [], [])
    else:
        selector = selector_string((daemonset.get("spec") or {}).get("selector"), what=f"spec.selector of DaemonSet {namespace}/{name}")
        nodes = [_small_node(node, images=node_images) for node in reader.items("Node", "v1")]
        pods = list(reader.items("Pod", "v1", namespace=namespace, label_selector=selector or None))
        result = info.report(daemonset, nodes, pods, node_images=node_images,
                             revision_hash=_revision_hash(reader, daemonset, namespace=namespace, selector=selector))
    result["summary"] = info.summarize(result)
    result["lines"] = info.describe(result, result["summary"], name=name, namespace=namespace)
    result["summary_lines"] = info.describe_summary(result["summary"], name=name, namespace=namespace)
    return result


def read_all(reader: ClusterReader, *, name: str, namespace: str, node_images: bool = False) -> dict[str, Any]:
    """As read, for the instance called ``name``: its DaemonSet, or, when that does not exist, its DaemonSets per
    architecture (found by the instance's owner labels). Then ``daemonsets`` holds each one's report (with its
    ``name``), the summary covers all (info.combine_summaries), and the lines are each one's in turn."""
    result = read(reader, name=name, namespace=namespace, node_images=node_images)
    if result["summary"]["exists"]:
        return result
    owners = derived_names(name, namespace, {})["owner_labels"]
    names = sorted((ds.get("metadata") or {}).get("name") for ds in reader.items(
        "DaemonSet", "apps/v1", namespace=namespace, label_selector=selector_string({"matchLabels": owners})))
    if not names:
        return result
    reports = [{"name": each, **read(reader, name=each, namespace=namespace, node_images=node_images)} for each in names]
    combined = dict(reports[0])
    combined.update(
        daemonsets=reports, summary=info.combine_summaries([report["summary"] for report in reports]),
        lines=[line for report in reports for line in report["lines"]],
        summary_lines=[line for report in reports for line in report["summary_lines"]],
        nodes=_nodes_of(reports))
    return combined


def _nodes_of(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each node once: as the DaemonSet it is eligible for sees it, else as the first report sees it."""
    eligible = {node["node"]: node for report in reports for node in report["nodes"] if node.get("eligible")}
    return [eligible.get(node["node"], node) for node in reports[0]["nodes"]] + [
        node for report in reports for node in report["nodes"] if node.get("eligible") and not any(
            other["node"] == node["node"] for other in reports[0]["nodes"])]


def run(module: Any) -> dict[str, Any]:
    """The image_puller_info module."""
    params = module.params
    client, retrier = connect_within(module)
    result = read_all(ClusterReader(client, retrier=retrier), name=params["name"], namespace=params["namespace"],
                      node_images=params["node_images"])
    result["changed"] = False
    return result
