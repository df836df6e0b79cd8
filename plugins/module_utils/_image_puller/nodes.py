# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""The nodes a DaemonSet runs a pod on, as the DaemonSet controller decides.

A node gets a pod when the pod template's nodeName (if any) names it, its labels
satisfy nodeSelector and the required node affinity, and every NoSchedule or
NoExecute taint on it is tolerated, counting the tolerations the DaemonSet
controller adds to its pods itself. Readiness and cordoning do not matter: the
controller creates pods there anyway, and quota counts them. Pure: works on
Node dicts, keeping only name, labels and taints per node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.kube import requirement_matches

# Tolerations the DaemonSet controller adds to every pod it creates (util.AddOrUpdateDaemonPodTolerations).
DAEMONSET_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
# Added only to pods on the host network: they need no pod network to start.
HOST_NETWORK_TOLERATION = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True)
class NodeInfo:
    """The little of a Node that placement needs; 5,000 of these stay small."""

    name: str
    labels: tuple[tuple[str, str], ...]
    taints: tuple[tuple[str, str, str], ...]  # (key, value, effect)

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> "NodeInfo":
        metadata = node.get("metadata") or {}
        taints = tuple(
            (t.get("key") or "", t.get("value") or "", t.get("effect") or "")
            for t in ((node.get("spec") or {}).get("taints") or [])
        )
        return cls(name=metadata.get("name") or "", labels=tuple(sorted((metadata.get("labels") or {}).items())), taints=taints)


@dataclass
class Placement:
    """Which nodes get a pod, and why the others do not (one reason per node, the first found)."""

    eligible: list[str] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)
    total: int = 0

    @property
    def count(self) -> int:
        return len(self.eligible)

    def summary(self) -> str:
        text = f"{self.count} of {self.total} nodes eligible"
        if self.excluded:
            text += " (excluded: " + ", ".join(f"{n} {reason}" for reason, n in sorted(self.excluded.items())) + ")"
        return text


def pod_tolerations(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's tolerations plus those the DaemonSet controller adds."""
    tolerations = list(pod_spec.get("tolerations") or []) + list(DAEMONSET_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        tolerations.append(HOST_NETWORK_TOLERATION)
    return tolerations


def tolerates(toleration: dict[str, Any], key: str, value: str, effect: str) -> bool:
    """Whether one toleration tolerates one taint (v1 Toleration.ToleratesTaint)."""
    if toleration.get("effect") and toleration["effect"] != effect:
        return False
    operator = toleration.get("operator") or "Equal"
    if toleration.get("key"):
        if toleration["key"] != key:
            return False
    elif operator != "Exists":
        return False  # an empty key tolerates everything only with operator Exists
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == value
    return False


def term_matches(term: dict[str, Any], labels: dict[str, str], fields: dict[str, str]) -> bool:
    """A nodeSelectorTerm: all its label expressions and field expressions hold; an empty term matches nothing."""
    expressions = term.get("matchExpressions") or []
    field_expressions = term.get("matchFields") or []
    if not expressions and not field_expressions:
        return False
    return (all(requirement_matches(r, labels, what="required node affinity") for r in expressions)
            and all(requirement_matches(r, fields, what="required node affinity") for r in field_expressions))


def required_affinity_terms(pod_spec: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The required node affinity terms, or None when there is none (then every node passes)."""
    node_affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    return list(required.get("nodeSelectorTerms") or [])


def _taint_text(key: str, value: str, effect: str) -> str:
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"


def exclusion_reason(pod_spec: dict[str, Any], node: NodeInfo, *, tolerations: list[dict[str, Any]] | None = None,
                     terms: list[dict[str, Any]] | None | bool = False) -> str | None:
    """Why the DaemonSet puts no pod on this node, or None when it does."""
    node_name = pod_spec.get("nodeName")
    if node_name and node_name != node.name:
        return f"spec.nodeName is {node_name}"
    labels = dict(node.labels)
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != str(value):
            return f"not matching nodeSelector {key}={value}"
    if terms is False:
        terms = required_affinity_terms(pod_spec)
    if terms is not None and not any(term_matches(t, labels, {"metadata.name": node.name}) for t in terms):
        return "not matching required node affinity"
    if tolerations is None:
        tolerations = pod_tolerations(pod_spec)
    for key, value, effect in node.taints:
        if effect in _BLOCKING_EFFECTS and not any(tolerates(t, key, value, effect) for t in tolerations):
            return f"with untolerated taint {_taint_text(key, value, effect)}"
    return None


def place(pod_spec: dict[str, Any], nodes: Iterable[NodeInfo | dict[str, Any]]) -> Placement:
    """The nodes the DaemonSet's pods land on, and a count of the others per reason."""
    placement = Placement()
    tolerations = pod_tolerations(pod_spec)
    terms = required_affinity_terms(pod_spec)
    for node in nodes:
        if not isinstance(node, NodeInfo):
            node = NodeInfo.from_node(node)
        placement.total += 1
        reason = exclusion_reason(pod_spec, node, tolerations=tolerations, terms=terms)
        if reason is None:
            placement.eligible.append(node.name)
        else:
            placement.excluded[reason] = placement.excluded.get(reason, 0) + 1
    return placement
