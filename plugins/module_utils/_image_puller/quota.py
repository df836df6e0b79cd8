# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""Does a DaemonSet fit the quotas and limit ranges of its namespace?

needed = one pod's footprint x eligible nodes (plus `pods` = nodes and
`count/daemonsets.apps` = 1), less what the current DaemonSet of the same
name already holds, compared with hard - used of every ResourceQuota whose
scopes match the pods and every ClusterResourceQuota that selects the
namespace; each LimitRange is checked against one pod. The answer carries the
arithmetic in words. Pure: it takes the objects read from the cluster as dicts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.kube import selector_matches
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.footprint import Footprint, pod_footprint
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.mode import mode_of
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.nodes import NodeInfo, Placement, place
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quantity import (
    format_quantity,
    parse_quantity,
    quantity_suffix,
)

DAEMONSET_COUNT = "count/daemonsets.apps"
CLUSTER_QUOTA_API_MISSING = "ClusterResourceQuota API not present: skipped"
_TERMINAL_PHASES = ("Succeeded", "Failed")
# The parts of a pod spec that decide its quota usage and scopes; a DaemonSet's pods share them.
_POD_KEYS = ("containers", "initContainers", "overhead", "resources", "priorityClassName", "activeDeadlineSeconds")


def _name(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def _quantities(raw: Any, what: str) -> dict[str, Fraction]:
    return {str(k): parse_quantity(v, what=f"{what}.{k}") for k, v in (raw or {}).items()}


def cluster_quota_selects(cluster_quota: dict[str, Any], namespace: dict[str, Any]) -> bool:
    """Whether a ClusterResourceQuota selects a namespace: its label selector and its annotation map must both hold."""
    selector = (cluster_quota.get("spec") or {}).get("selector") or {}
    metadata = namespace.get("metadata") or {}
    labels, annotations = metadata.get("labels") or {}, metadata.get("annotations") or {}
    if selector.get("labels") is not None and not selector_matches(selector["labels"], labels, what="ClusterResourceQuota spec.selector.labels"):
        return False
    for key, value in (selector.get("annotations") or {}).items():
        if annotations.get(key) != value:
            return False
    return True


def scope_selectors(quota_spec: dict[str, Any]) -> list[dict[str, Any]]:
    """spec.scopes (each as an Exists requirement) and spec.scopeSelector.matchExpressions together."""
    selectors = [{"scopeName": s, "operator": "Exists"} for s in quota_spec.get("scopes") or []]
    selectors += list((quota_spec.get("scopeSelector") or {}).get("matchExpressions") or [])
    return selectors


def scope_matches(selector: dict[str, Any], footprint: Footprint) -> bool:
    """Whether a pod falls under one scope requirement, as the pod quota evaluator decides."""
    scope = selector.get("scopeName")
    if scope == "Terminating":
        return footprint.terminating
    if scope == "NotTerminating":
        return not footprint.terminating
    if scope == "BestEffort":
        return footprint.best_effort
    if scope == "NotBestEffort":
        return not footprint.best_effort
    if scope == "CrossNamespacePodAffinity":
        return footprint.cross_namespace_affinity
    if scope == "PriorityClass":
        operator, values, name = selector.get("operator"), selector.get("values") or [], footprint.priority_class
        # a pod without a priority class has no "PriorityClass" key at all for the label-selector operators
        if operator == "Exists":
            return bool(name)
        if operator == "DoesNotExist":
            return not name
        if operator == "In":
            return bool(name) and name in values
        if operator == "NotIn":
            return not name or name not in values
        raise ValueError(f"scopeSelector operator {operator!r} for PriorityClass is not one of In, NotIn, Exists, DoesNotExist")
    return False


def _scope_text(selector: dict[str, Any]) -> str:
    if selector.get("scopeName") == "PriorityClass" and selector.get("operator") in ("In", "NotIn"):
        return f"PriorityClass {selector['operator']} {list(selector.get('values') or [])}"
    if selector.get("scopeName") == "PriorityClass":
        return f"PriorityClass {selector.get('operator')}"
    return str(selector.get("scopeName"))


@dataclass
class QuotaSource:
    """A ResourceQuota or ClusterResourceQuota reduced to what the check compares."""

    kind: str
    name: str
    namespace: str
    spec: dict[str, Any]
    hard: dict[str, Fraction]
    used: dict[str, Fraction]
    units: dict[str, str]
    used_known: bool

    @classmethod
    def from_resource_quota(cls, obj: dict[str, Any]) -> "QuotaSource":
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        where = f'ResourceQuota "{_name(obj)}"'
        return cls(
            kind="ResourceQuota", name=_name(obj), namespace=(obj.get("metadata") or {}).get("namespace") or "", spec=spec,
            hard=_quantities(spec.get("hard"), f"{where} spec.hard"), used=_quantities(status.get("used"), f"{where} status.used"),
            units={k: quantity_suffix(v) for k, v in (spec.get("hard") or {}).items()}, used_known=status.get("used") is not None,
        )

    @classmethod
    def from_cluster_quota(cls, obj: dict[str, Any]) -> "QuotaSource":
        spec = (obj.get("spec") or {}).get("quota") or {}
        total = (obj.get("status") or {}).get("total") or {}
        where = f'ClusterResourceQuota "{_name(obj)}"'
        return cls(
            kind="ClusterResourceQuota", name=_name(obj), namespace="", spec=spec,
            hard=_quantities(spec.get("hard"), f"{where} spec.quota.hard"), used=_quantities(total.get("used"), f"{where} status.total.used"),
            units={k: quantity_suffix(v) for k, v in (spec.get("hard") or {}).items()}, used_known=total.get("used") is not None,
        )

    def label(self, namespace: str) -> str:
        if self.kind == "ResourceQuota":
            return f'ResourceQuota "{self.name}" (namespace {self.namespace or namespace})'
        return f'ClusterResourceQuota "{self.name}" (selecting namespace {namespace})'


class PodTally:
    """The current DaemonSet's pods, grouped by the parts of their spec that quota reads.

    A DaemonSet's pods differ only in the node they are pinned to, so 5,000 pods make a
    group or two (two during a rolling update), not 5,000 footprints.
    """

    def __init__(self) -> None:
        self.groups: dict[str, list[Any]] = {}  # key -> [spec subset, live pods, all pods]

    def add(self, pod: dict[str, Any], *, times: int = 1, live: bool | None = None) -> None:
        """Count the pod (or times pods of its spec); live: whether they hold resources, by default from the pod's phase."""
        if times <= 0:
            return
        spec = pod.get("spec") or {}
        subset = {k: spec[k] for k in _POD_KEYS if k in spec}
        affinity = spec.get("affinity") or {}
        subset["affinity"] = {k: affinity[k] for k in ("podAffinity", "podAntiAffinity") if k in affinity}
        key = json.dumps(subset, sort_keys=True)
        group = self.groups.setdefault(key, [subset, 0, 0])
        if live is None:
            live = (pod.get("status") or {}).get("phase") not in _TERMINAL_PHASES
        group[1] += times if live else 0
        group[2] += times

    @property
    def live(self) -> int:
        return sum(g[1] for g in self.groups.values())

    def usage_under(self, source: QuotaSource) -> dict[str, Fraction]:
        """What these pods count against one quota (only the pods its scopes select)."""
        held: dict[str, Fraction] = {}
        selectors = scope_selectors(source.spec)
        for spec, live, total in self.groups.values():
            footprint = pod_footprint(spec, apply_defaults=False)
            if not all(scope_matches(s, footprint) for s in selectors):
                continue
            for resource, value in footprint.usage.items():
                count = total if resource == "count/pods" else live  # count/pods counts pods in any phase
                held[resource] = held.get(resource, Fraction(0)) + value * count
        return held


@dataclass
class Check:
    """The outcome: rows per quota and resource, messages, and whether everything fits."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    shortfalls: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.shortfalls


def _fmt(value: Fraction, resource: str, suffix: str = "") -> str:
    return format_quantity(value, resource, suffix=suffix)


def _quota_rows(check: Check, source: QuotaSource, *, footprint: Footprint, nodes: int, tally: PodTally | None,
                daemonset: str, namespace: str, earlier: dict | None = None) -> None:
    selectors = scope_selectors(source.spec)
    label = source.label(namespace)
    unmatched = [s for s in selectors if not scope_matches(s, footprint)]
    if unmatched:
        check.notes.append(f"{label} does not apply: the pods are outside its scope {', '.join(_scope_text(s) for s in unmatched)}")
        return
    if not source.used_known and source.hard:
        check.notes.append(f"{label} has no used figures yet (status not computed by the quota controller): counted as 0 used")

    missing = footprint.tracked_but_unset(source.hard)
    for resource, containers in sorted(missing.items()):
        who = ", ".join(f'container "{c}"' for c in containers)
        text = (f"{label} tracks {resource}, but {who} "
                f"set{'s' if len(containers) == 1 else ''} no {resource.split('.')[-1]} "
                f"{'limit' if resource.startswith('limits.') else 'request'} and no LimitRange gives a default: "
                "the API server refuses every pod of the DaemonSet")
        check.rows.append({"quota": source.name, "kind": source.kind, "resource": resource, "needed": "not set",
                           "available": _fmt(source.hard[resource] - source.used.get(resource, Fraction(0)), resource, source.units.get(resource, "")),
                           "shortfall": "every pod refused", "fits": False})
        check.shortfalls.append(text)
        check.messages.append(text)

    held = tally.usage_under(source) if tally is not None else {}
    # what the DaemonSets checked before this one in the same deploy need of this quota (per-architecture DaemonSets)
    before = {} if earlier is None else earlier.setdefault((source.kind, source.name), {})
    for resource in sorted(source.hard):
        if resource == DAEMONSET_COUNT:
            if selectors:
                continue  # object counts are never scoped: a scoped quota does not count DaemonSets
            total, explain = Fraction(1), "1 DaemonSet"
            already = Fraction(1) if tally is not None else Fraction(0)
            held_text = f'DaemonSet "{daemonset}" already exists'
        elif resource in footprint.usage:
            total = footprint.usage[resource] * nodes
            explain = footprint.explain.get(resource, "")
            already = held.get(resource, Fraction(0))
            held_text = (f'{_fmt(already, resource, footprint.units.get(resource, ""))} already held by the '
                         f'{tally.live if tally else 0} pods of DaemonSet "{daemonset}"')
        else:
            continue
        suffix = footprint.units.get(resource) or source.units.get(resource, "")
        needed = total - already
        available = source.hard[resource] - source.used.get(resource, Fraction(0)) - before.get(resource, Fraction(0))
        shortfall = max(Fraction(0), needed - available)
        after_others = " after the other DaemonSets of this deploy" if before.get(resource) else ""
        if earlier is not None:
            before[resource] = before.get(resource, Fraction(0)) + max(Fraction(0), needed)
        if resource == DAEMONSET_COUNT:
            arithmetic = f"{explain} = {_fmt(total, resource)} {resource} needed"
        else:
            per_pod = f"({explain})" if "+" in explain else explain
            node_word = "node" if nodes == 1 else "nodes"
            arithmetic = f"{per_pod} x {nodes} {node_word} = {_fmt(total, resource, suffix)} {resource} needed"
        if already:
            arithmetic += f", less {held_text}: {_fmt(needed, resource, suffix)} more"
        text = f"{arithmetic}, {_fmt(available, resource, suffix)} available in {label}{after_others}"
        if shortfall:
            text += f": short by {_fmt(shortfall, resource, suffix)}"
            check.shortfalls.append(text)
        check.messages.append(text)
        check.rows.append({
            "quota": source.name, "kind": source.kind, "resource": resource, "needed": _fmt(needed, resource, suffix),
            "available": _fmt(available, resource, suffix), "shortfall": _fmt(shortfall, resource, suffix), "fits": not shortfall,
        })


def _limit_range_rows(check: Check, limit_range: dict[str, Any], footprint: Footprint, namespace: str) -> None:
    name = _name(limit_range)
    label = f'LimitRange "{name}" (namespace {namespace})'

    def row(item_type: str, constraint: str, resource: str, who: str, value: Fraction | None, bound: Fraction, bad: bool, text: str) -> None:
        res_name = resource.split(".")[-1]
        suffix = footprint.units.get(resource) or footprint.units.get(f"requests.{res_name}", "")
        ratio = constraint == "maxLimitRequestRatio"

        def shown(quantity: Fraction) -> str:
            return format_quantity(quantity) if ratio else _fmt(quantity, res_name, suffix)

        if value is None:
            needed, shortfall = "not set", "not set"
        else:
            needed = shown(value)
            shortfall = shown(abs(value - bound) if bad else Fraction(0))
        check.rows.append({
            "quota": name, "kind": "LimitRange", "resource": resource, "constraint": f"{item_type} {constraint}", "scope": who,
            "needed": needed, "available": shown(bound), "shortfall": shortfall, "fits": not bad,
        })
        if bad:
            message = f"{label}: {text}"
            check.shortfalls.append(message)
            check.messages.append(message)

    for item in ((limit_range.get("spec") or {}).get("limits") or []):
        item_type = item.get("type")
        if item_type == "Container":
            subjects = [(f'{c.kind} "{c.name}"', c.requests, c.limits) for c in footprint.containers]
        elif item_type == "Pod":
            subjects = [("the pod (all containers)", footprint.pod_requests, footprint.pod_limits)]
        else:
            continue
        where = f"LimitRange \"{name}\" {item_type}"
        # max bounds the limit (and a request above it), min the request (and a limit below it)
        for which, primary, secondary in (("max", "limit", "request"), ("min", "request", "limit")):
            for res, raw in (item.get(which) or {}).items():
                bound = parse_quantity(raw, what=f"{where} {which}.{res}")
                suffix = quantity_suffix(raw)
                word = "above" if which == "max" else "below"
                for who, requests, limits in subjects:
                    values = {"request": requests.get(res), "limit": limits.get(res)}
                    if values[primary] is None:
                        row(item_type, which, f"{primary}s.{res}", who, None, bound, True,
                            f"{who} sets no {res} {primary}, but the {item_type} {which} for {res} is {_fmt(bound, res, suffix)}: pods are refused")
                        continue
                    for kind in (primary, secondary):
                        value = values[kind]
                        bad = value is not None and (value > bound if which == "max" else value < bound)
                        if kind == primary or bad:
                            row(item_type, which, f"{kind}s.{res}", who, value, bound, bad,
                                f"{who} {res} {kind} {_fmt(value, res, suffix)} is {word} the {item_type} {which} {_fmt(bound, res, suffix)}")
        for res, raw in (item.get("maxLimitRequestRatio") or {}).items():
            bound = parse_quantity(raw, what=f"{where} maxLimitRequestRatio.{res}")
            for who, requests, limits in subjects:
                limit, request = limits.get(res), requests.get(res)
                if not request or not limit:
                    row(item_type, "maxLimitRequestRatio", res, who, None, bound, True,
                        f"{who} needs both a {res} request and limit (non-zero) for the {item_type} maxLimitRequestRatio {format_quantity(bound)}")
                    continue
                ratio = limit / request
                row(item_type, "maxLimitRequestRatio", res, who, ratio, bound, ratio > bound,
                    f"{who} {res} limit/request ratio {format_quantity(ratio)} is above the {item_type} maxLimitRequestRatio {format_quantity(bound)}")


def shape_needs(definition: dict[str, Any], *, nodes: int, limit_ranges: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """What one shape of the DaemonSet (image_puller_mode, read from its pod template) needs: per pod and on `nodes` nodes.

    The footprint is pod_footprint's, Kubernetes' rule; nothing is compared with a quota here.
    """
    template = (definition.get("spec") or {}).get("template") or {}
    footprint = pod_footprint(dict(template.get("spec") or {}), limit_ranges=limit_ranges)
    counted = {name: value for name, value in footprint.usage.items() if name not in ("pods", "count/pods")}
    return {
        "mode": mode_of(template),
        "pod": {name: _fmt(value, name, footprint.units.get(name, "")) for name, value in sorted(counted.items())},
        "pod_explained": {name: footprint.explain[name] for name in sorted(counted)},
        "nodes": nodes,
        "total": {name: _fmt(value * nodes, name, footprint.units.get(name, "")) for name, value in sorted(counted.items())},
    }


def describe_shapes(shapes: list[dict[str, Any]]) -> list[str]:
    """One line per shape: its mode, one pod's needs and the total on the eligible nodes (the first is the one deployed)."""
    # the bare names (cpu, memory) repeat requests.*: the line shows requests and limits only
    def shown(values: dict[str, str]) -> str:
        return ", ".join(f"{name} {value}" for name, value in values.items() if name.startswith(("requests.", "limits.")))

    lines = []
    for index, shape in enumerate(shapes):
        pod, total = shown(shape["pod"]), shown(shape["total"])
        verb = "needs" if index == 0 else "would need"
        nodes = f'{shape["nodes"]} eligible node{"" if shape["nodes"] == 1 else "s"}'
        lines.append(f'image_puller_mode {shape["mode"]} {verb} {pod} per pod; on {nodes} {total}')
    return lines


def check_daemonset(
    definition: dict[str, Any],
    *,
    namespace: str,
    nodes: Iterable[NodeInfo | dict[str, Any]] | Placement,
    resource_quotas: Iterable[dict[str, Any]] = (),
    limit_ranges: Iterable[dict[str, Any]] = (),
    cluster_quotas: Iterable[dict[str, Any]] | None = None,
    cluster_quotas_selected: bool = False,
    namespace_object: dict[str, Any] | None = None,
    current_pods: PodTally | Iterable[dict[str, Any]] | None = None,
    priority_classes: Iterable[dict[str, Any]] = (),
    compare: Iterable[dict[str, Any]] = (),
    earlier: dict | None = None,
) -> dict[str, Any]:
    """The whole pre-flight as a module result (without `changed`).

    compare: other shapes of the same DaemonSet (the other image_puller_mode); their needs are reported
    in `shapes` beside the definition's, not checked against the quotas.
    earlier: for several DaemonSets of one deploy checked in turn, what the ones before need per quota
    (updated with this one's needs): each then sees what the others leave.

    cluster_quotas=None means the quota.openshift.io API is absent; cluster_quotas_selected=True
    means they were listed as AppliedClusterResourceQuota, i.e. already those selecting the
    namespace. current_pods is None when no DaemonSet of that name exists yet.
    """
    if not isinstance(definition, dict) or definition.get("kind") != "DaemonSet":
        raise ValueError(f"definition must be a DaemonSet, got kind {definition.get('kind') if isinstance(definition, dict) else type(definition).__name__!r}")
    daemonset = _name(definition)
    template = ((definition.get("spec") or {}).get("template") or {})
    pod_spec = dict(template.get("spec") or {})
    limit_ranges = list(limit_ranges)
    compare = list(compare)
    check = Check()

    if not pod_spec.get("priorityClassName"):
        # the Priority admission plugin gives such pods the cluster's global default class before quota sees them
        defaults = [_name(pc) for pc in priority_classes if pc.get("globalDefault")]
        if defaults:
            pod_spec["priorityClassName"] = sorted(defaults)[0]
            check.notes.append(f'the pods get the global default PriorityClass "{pod_spec["priorityClassName"]}"')

    placement = nodes if isinstance(nodes, Placement) else place(pod_spec, nodes)
    footprint = pod_footprint(pod_spec, limit_ranges=limit_ranges)
    tally = current_pods
    if tally is not None and not isinstance(tally, PodTally):
        pods, tally = tally, PodTally()
        for pod in pods:
            tally.add(pod)

    for problem in footprint.problems:
        check.shortfalls.append(problem)
        check.messages.append(problem)
    if placement.count == 0:
        check.notes.append(f"no node is eligible ({placement.summary()}): the DaemonSet would run no pod")

    for obj in sorted(resource_quotas, key=_name):
        _quota_rows(check, QuotaSource.from_resource_quota(obj), footprint=footprint, nodes=placement.count,
                    tally=tally, daemonset=daemonset, namespace=namespace, earlier=earlier)
    if cluster_quotas is None:
        check.notes.append(CLUSTER_QUOTA_API_MISSING)
    else:
        for obj in sorted(cluster_quotas, key=_name):
            if not cluster_quotas_selected:
                if namespace_object is None:
                    check.notes.append(f'ClusterResourceQuota "{_name(obj)}" not evaluated: namespace {namespace} could not be read')
                    continue
                if not cluster_quota_selects(obj, namespace_object):
                    continue
            _quota_rows(check, QuotaSource.from_cluster_quota(obj), footprint=footprint, nodes=placement.count,
                        tally=tally, daemonset=daemonset, namespace=namespace, earlier=earlier)
    for limit_range in sorted(limit_ranges, key=_name):
        _limit_range_rows(check, limit_range, footprint, namespace)

    head = (f'DaemonSet "{daemonset}" in namespace {namespace}: {placement.summary()}; '
            f"one pod needs {', '.join(f'{k} {v}' for k, v in footprint.printable().items() if k not in ('pods', 'count/pods'))}")
    if tally is not None:
        head += f"; the current DaemonSet has {tally.live} live pods"
    shapes = [shape_needs(item, nodes=placement.count, limit_ranges=limit_ranges) for item in [definition, *compare]]
    return {
        "fits": check.fits,
        "daemonset": daemonset,
        "namespace": namespace,
        "eligible_nodes": placement.count,
        "nodes": {"total": placement.total, "eligible": placement.count, "excluded": dict(sorted(placement.excluded.items()))},
        "footprint": footprint.printable(),
        "footprint_explained": dict(sorted(footprint.explain.items())),
        "existing": None if tally is None else {"pods": tally.live},
        "rows": check.rows,
        "shortfalls": check.shortfalls,
        "messages": [head] + check.messages + check.notes + (describe_shapes(shapes) if compare else []),
        "notes": check.notes,
        "summary": head,
        "shapes": shapes,
        "shape_lines": describe_shapes(shapes),
    }


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The pre-flight of several DaemonSets of one deploy (checked in turn with ``earlier``) as one result."""
    if len(results) == 1:
        return results[0]
    names = [result["daemonset"] for result in results]

    def named(result: dict[str, Any], key: str) -> list:
        return [f'DaemonSet "{result["daemonset"]}": {text}' if not text.startswith("DaemonSet") else text for text in result[key]]

    return {
        "fits": all(result["fits"] for result in results),
        "unchanged": all(result.get("unchanged") for result in results),
        "daemonset": ", ".join(names),
        "namespace": results[0]["namespace"],
        "eligible_nodes": sum(result["eligible_nodes"] for result in results),
        "rows": [{**row, "daemonset": result["daemonset"]} for result in results for row in result["rows"]],
        "shortfalls": [text for result in results for text in named(result, "shortfalls")],
        "messages": [text for result in results for text in named(result, "messages")],
        "notes": [text for result in results for text in named(result, "notes")],
        "summary": "; ".join(result["summary"] for result in results),
        "daemonsets": results,
    }


def failure_message(result: dict[str, Any]) -> str:
    """The module's fail message: what does not fit, in words."""
    return (f'image_puller_quota: DaemonSet "{result["daemonset"]}" does not fit in namespace {result["namespace"]}: '
            + "; ".join(result["shortfalls"]))
