# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""The Kubernetes rules every other helper builds on, each written once: selectors, ownership, node order.

Pure: plain dicts in, plain values out; imports nothing but errors. A rule
broken by an object (an unknown operator) raises errors.InvalidObjectError,
which the modules report as a failure, never a traceback.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import InvalidObjectError

# metav1.LabelSelector operators; node selector requirements (v1.NodeSelectorRequirement) add Gt and Lt.
LABEL_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
NODE_OPERATORS = LABEL_OPERATORS + ("Gt", "Lt")


def name_of(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def _int(text: str | None) -> int | None:
    try:
        return int(str(text), 10)
    except (TypeError, ValueError):
        return None


def requirement_matches(requirement: Mapping[str, Any], values_by_key: Mapping[str, str], *,
                        operators: tuple[str, ...] = NODE_OPERATORS, what: str = "selector") -> bool:
    """One requirement (key, operator, values) against labels (or a node's fields)."""
    key, operator = requirement.get("key"), requirement.get("operator")
    values = [str(value) for value in requirement.get("values") or []]
    if operator not in operators:
        raise InvalidObjectError(f"{what}: operator {operator!r} (key {key!r}) is not one of {', '.join(operators)}")
    present = key in values_by_key
    actual = values_by_key.get(key)
    if operator == "In":
        return present and actual in values
    if operator == "NotIn":
        return not present or actual not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    # Gt, Lt: one integer value against an integer label
    if not present or len(values) != 1:
        return False
    have, want = _int(actual), _int(values[0])
    if have is None or want is None:
        return False
    return have > want if operator == "Gt" else have < want


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str], *, what: str = "label selector") -> bool:
    """metav1.LabelSelector semantics: matchLabels and matchExpressions all hold; {} selects everything, None nothing."""
    if selector is None:
        return False
    if any(labels.get(key) != str(value) for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    return all(requirement_matches(requirement, labels, operators=LABEL_OPERATORS, what=what)
               for requirement in selector.get("matchExpressions") or [])


def selector_string(selector: Mapping[str, Any] | None, *, what: str = "label selector") -> str:
    """A LabelSelector as the labelSelector string the list and watch calls take ("" selects everything)."""
    selector = selector or {}
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(sorted(str(value) for value in expression.get("values") or []))
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(str(key))
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise InvalidObjectError(f"{what}: operator {operator!r} (key {key!r}) is not one of {', '.join(LABEL_OPERATORS)}")
    return ",".join(parts)


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether obj's controller is owner (by uid when both carry one, else by kind and name)."""
    owner_meta = owner.get("metadata") or {}
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if not ref.get("controller"):
            continue
        if ref.get("uid") and owner_meta.get("uid"):
            return ref["uid"] == owner_meta["uid"]
        return ref.get("kind") == owner.get("kind", "DaemonSet") and ref.get("name") == owner_meta.get("name")
    return False


def terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def target_node(pod: Mapping[str, Any]) -> str | None:
    """The node a DaemonSet pod runs on or is meant for.

    The DaemonSet controller pins each pod to its node with a required node
    affinity on the field metadata.name, so an unscheduled pod still names it.
    """
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            values = field.get("values") or []
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and len(values) == 1:
                return values[0]
    return None


def node_order(pod: Mapping[str, Any]) -> tuple[str, str]:
    """Sort key: pods by their node, then by name."""
    return target_node(pod) or "", name_of(pod)


def owned_pods(pods: Iterable[Mapping[str, Any]], owner: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The owner's pods that are not terminating, in node order."""
    return sorted((pod for pod in pods if owned_by(pod, owner) and not terminating(pod)), key=node_order)


def parse_time(value: str | None) -> datetime.datetime | None:
    """An RFC 3339 time of the API (UTC when it names no zone), or None."""
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)
