# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""What image_puller_node_labels does: label the nodes where every image is cached, unlabel the others.

Which nodes have every image is image_puller_info's summary (fully_cached_nodes);
the label is changed only where it is wrong, one merge patch per node.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import info_runner
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import connect_within
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.objects import ObjectApi
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.names import FIELD_MANAGER, NODE_LABEL_VALUE, node_label_key


def label_changes(current: dict[str, str], wanted: set[str]) -> tuple[list[str], list[str]]:
    """(nodes to label, nodes to unlabel): current maps each labelled node to its value; wanted are the fully cached nodes."""
    add = sorted(node for node in wanted if current.get(node) != NODE_LABEL_VALUE)
    remove = sorted(node for node in current if node not in wanted)
    return add, remove


def run(module: Any) -> dict[str, Any]:
    """The image_puller_node_labels module."""
    params = module.params
    key = params["label"] or node_label_key(params["name"])
    client, retrier = connect_within(module)
    reader = ObjectApi(client, field_manager=FIELD_MANAGER, retrier=retrier)
    current = {(node.get("metadata") or {}).get("name"): ((node.get("metadata") or {}).get("labels") or {}).get(key)
               for node in reader.items("Node", "v1", label_selector=key)}
    result: dict[str, Any] = {"label": key, "summary": None}
    wanted: set[str] = set()
    if params["state"] == "present":
        # the instance's DaemonSet, or its DaemonSets per architecture (each node is eligible for at most one)
        report = info_runner.read_all(reader, name=params["name"], namespace=params["namespace"])
        result["summary"] = report["summary"]
        wanted = set(report["summary"]["fully_cached_nodes"])
    add, remove = label_changes(current, wanted)
    nodes = reader.resource_of({"apiVersion": "v1", "kind": "Node"}) if add or remove else None
    # check mode: the client is a dry-run one, so each patch is a server-side dry run
    for node, value in [(node, NODE_LABEL_VALUE) for node in add] + [(node, None) for node in remove]:
        reader.merge_patch(nodes, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}},
                           {"metadata": {"labels": {key: value}}}, field_manager=FIELD_MANAGER,
                           action=f"{'set' if value else 'remove'} label {key}")
    result.update(changed=bool(add or remove), labelled=add, unlabelled=remove,
                  nodes=sorted((set(current) | set(add)) - set(remove)))
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = {"before": {"nodes": sorted(current)}, "after": {"nodes": result["nodes"]},
                          "before_header": f"nodes labelled {key}", "after_header": f"nodes labelled {key}"}
    return result
