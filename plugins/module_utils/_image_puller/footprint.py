# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""What one pod of a DaemonSet counts against a quota.

The pod is first given the values the API server would give it before quota
admission looks at it: API defaulting (a limit without a request makes the
request equal to the limit) and then the LimitRanger's defaults (LimitRange
items of type Container: `default` fills unset limits, `defaultRequest` unset
requests). Its footprint per resource is then the larger of the sum over its
containers and its largest init container (sidecars, init containers with
restartPolicy Always, run alongside the containers and count with them), plus
spec.overhead, as the quota evaluator counts it. Pure: no cluster access.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quantity import (
    format_quantity,
    parse_quantity,
    quantity_suffix,
)

# Resources that make every container state them once a quota tracks them (the quota evaluator's
# "validationSet"): a quota on limits.memory refuses a pod whose containers set no memory limit.
VALIDATED_RESOURCES = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
# Resources quota counts with a bare name as well as requests.<name>.
_BARE_REQUEST_NAMES = ("cpu", "memory", "ephemeral-storage")
_LIMIT_NAMES = ("cpu", "memory", "ephemeral-storage")
_NATIVE_PREFIXES = ("kubernetes.io/", "requests.")
_POD_LEVEL = ("cpu", "memory")


@dataclass
class Container:
    """A container as admitted: requests and limits after defaulting, exact."""

    name: str
    kind: str  # "container", "init container" or "sidecar" (restartable init container)
    requests: dict[str, Fraction] = field(default_factory=dict)
    limits: dict[str, Fraction] = field(default_factory=dict)
    # where each value came from when not from the definition: {"limits.memory": 'LimitRange "lr" default'}
    defaulted: dict[str, str] = field(default_factory=dict)


@dataclass
class Footprint:
    """One pod's usage as quota counts it, with the explanation of each figure."""

    usage: dict[str, Fraction]
    explain: dict[str, str]
    units: dict[str, str]
    containers: list[Container]
    best_effort: bool
    terminating: bool
    priority_class: str
    cross_namespace_affinity: bool
    pod_requests: dict[str, Fraction]  # by plain resource name, without overhead (LimitRange Pod items)
    pod_limits: dict[str, Fraction]
    problems: list[str] = field(default_factory=list)

    def tracked_but_unset(self, resources: Iterable[str]) -> dict[str, list[str]]:
        """For each quota resource in `resources` that quota admission requires every container to
        state, the containers that state nothing for it (quota then refuses the pod)."""
        wanted = [r for r in resources if r in VALIDATED_RESOURCES]
        missing: dict[str, list[str]] = {}
        for container in self.containers:
            present = set(_container_quota_names(container))
            for resource in wanted:
                if resource not in present:
                    missing.setdefault(resource, []).append(container.name)
        return missing

    def printable(self) -> dict[str, str]:
        """The usage as quantities a person reads ({"limits.memory": "100Mi"})."""
        return {name: format_quantity(value, name, suffix=self.units.get(name, "")) for name, value in sorted(self.usage.items())}


def _container_quota_names(container: Container) -> list[str]:
    names = []
    for name in container.requests:
        if name in _BARE_REQUEST_NAMES:
            names += [name, f"requests.{name}"]
    for name in container.limits:
        if name in _LIMIT_NAMES:
            names.append(f"limits.{name}")
    return names


def _is_extended(name: str) -> bool:
    # extended resources are domain-prefixed names outside kubernetes.io (example.com/gpu)
    return "/" in name and not name.startswith(_NATIVE_PREFIXES)


def _resources(raw: Any, where: str) -> tuple[dict[str, Fraction], dict[str, str]]:
    values: dict[str, Fraction] = {}
    units: dict[str, str] = {}
    if raw in (None, {}):
        return values, units
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping of resource name to quantity, got {raw!r}")
    for name, quantity in raw.items():
        values[str(name)] = parse_quantity(quantity, what=f"{where}.{name}")
        units[str(name)] = quantity_suffix(quantity)
    return values, units


def normalize_limit_range_item(item: dict[str, Any]) -> dict[str, Any]:
    """A LimitRange item with the defaults the API server stores for type Container.

    A default limit falls back to max, a default request to the default limit and then
    to min. Reading a stored LimitRange gives these already; doing it again is harmless
    and makes hand-written LimitRanges (in tests) behave the same.
    """
    item = copy.deepcopy(item)
    if item.get("type") != "Container":
        return item
    default = dict(item.get("default") or {})
    default_request = dict(item.get("defaultRequest") or {})
    for name, value in (item.get("max") or {}).items():
        default.setdefault(name, value)
    for name, value in default.items():
        default_request.setdefault(name, value)
    for name, value in (item.get("min") or {}).items():
        default_request.setdefault(name, value)
    item["default"] = default
    item["defaultRequest"] = default_request
    return item


def admitted_containers(pod_spec: dict[str, Any], limit_ranges: Iterable[dict[str, Any]] = ()) -> tuple[list[Container], dict[str, str], list[str]]:
    """The pod's containers with requests and limits as quota admission sees them.

    Returns (containers, units, problems); units maps a plain resource name to the suffix
    the definition used for it first (for printing), problems lists pods the API server
    would reject as invalid once defaults are in (a default limit below a set request).
    """
    units: dict[str, str] = {}
    problems: list[str] = []
    # LimitRanger walks the namespace's LimitRanges in turn; each fills only what is still unset.
    defaults = []
    for limit_range in sorted(limit_ranges, key=lambda lr: (lr.get("metadata") or {}).get("name", "")):
        lr_name = (limit_range.get("metadata") or {}).get("name", "")
        for item in ((limit_range.get("spec") or {}).get("limits") or []):
            if item.get("type") == "Container":
                item = normalize_limit_range_item(item)
                defaults.append((lr_name, item["default"], item["defaultRequest"]))

    containers: list[Container] = []
    groups = (("initContainers", "init container"), ("containers", "container"))
    for key, kind in groups:
        for index, raw in enumerate(pod_spec.get(key) or []):
            name = raw.get("name") or f"{key}[{index}]"
            where = f"{kind} \"{name}\""
            resources = raw.get("resources") or {}
            requests, request_units = _resources(resources.get("requests"), f"{where} requests")
            limits, limit_units = _resources(resources.get("limits"), f"{where} limits")
            for unit_map in (limit_units, request_units):
                for res, unit in unit_map.items():
                    if unit:
                        units.setdefault(res, unit)
            actual_kind = "sidecar" if key == "initContainers" and raw.get("restartPolicy") == "Always" else kind
            container = Container(name=name, kind=actual_kind, requests=requests, limits=limits)
            # API defaulting of a Pod (not of the template): a limit without a request is also the request.
            for res, value in limits.items():
                if res not in container.requests:
                    container.requests[res] = value
                    container.defaulted[f"requests.{res}"] = "its limit"
            for lr_name, default, default_request in defaults:
                for res, value in default.items():
                    if res not in container.limits:
                        container.limits[res] = parse_quantity(value, what=f'LimitRange "{lr_name}" default.{res}')
                        container.defaulted[f"limits.{res}"] = f'LimitRange "{lr_name}" default'
                        units.setdefault(res, quantity_suffix(value))
                for res, value in default_request.items():
                    if res not in container.requests:
                        container.requests[res] = parse_quantity(value, what=f'LimitRange "{lr_name}" defaultRequest.{res}')
                        container.defaulted[f"requests.{res}"] = f'LimitRange "{lr_name}" defaultRequest'
                        units.setdefault(res, quantity_suffix(value))
            for res, limit in container.limits.items():
                request = container.requests.get(res)
                if request is not None and request > limit:
                    came_from = container.defaulted.get(f"limits.{res}") or container.defaulted.get(f"requests.{res}") or "the definition"
                    problems.append(
                        f"{where}: {res} request {format_quantity(request, res, suffix=units.get(res, ''))} is above its limit "
                        f"{format_quantity(limit, res, suffix=units.get(res, ''))} (from {came_from}); the API server rejects such pods"
                    )
            containers.append(container)
    return containers, units, problems


def _add(total: dict[str, Fraction], values: dict[str, Fraction]) -> None:
    for name, value in values.items():
        total[name] = total.get(name, Fraction(0)) + value


def _max_into(total: dict[str, Fraction], values: dict[str, Fraction]) -> None:
    for name, value in values.items():
        if name not in total or value > total[name]:
            total[name] = value


def aggregate(containers: list[Container], which: str) -> tuple[dict[str, Fraction], dict[str, str]]:
    """max(sum over containers and sidecars, largest init container phase) for requests or limits.

    An init container runs alongside the sidecars started before it, so each init phase
    counts those sidecars too. Returns the totals and, per resource, how they were reached.
    """
    regular = [c for c in containers if c.kind == "container"]
    total: dict[str, Fraction] = {}
    for container in regular:
        _add(total, getattr(container, which))
    sidecars_so_far: dict[str, Fraction] = {}
    init_peak: dict[str, Fraction] = {}
    init_peak_by: dict[str, str] = {}
    for container in containers:
        if container.kind == "container":
            continue
        values = getattr(container, which)
        if container.kind == "sidecar":
            _add(total, values)
            _add(sidecars_so_far, values)
            phase = dict(sidecars_so_far)
        else:
            phase = dict(sidecars_so_far)
            _add(phase, values)
        for name, value in phase.items():
            if name not in init_peak or value > init_peak[name]:
                init_peak[name] = value
                init_peak_by[name] = container.name
    how: dict[str, str] = {}
    for name, value in init_peak.items():
        if name not in total or value > total[name]:
            total[name] = value
            how[name] = f'init container "{init_peak_by[name]}"'
    return total, how


def _explain_sum(containers: list[Container], which: str, resource: str, suffix: str) -> str:
    counted = [c for c in containers if c.kind in ("container", "sidecar")]
    values = [getattr(c, which).get(resource) for c in counted]
    present = [v for v in values if v is not None]
    if not present:
        return ""
    noun = "container" if len(present) == 1 else "containers"
    if len(set(present)) == 1:
        return f"{format_quantity(present[0], resource, suffix=suffix)} x {len(present)} {noun}"
    return "(" + " + ".join(format_quantity(v, resource, suffix=suffix) for v in present) + f") for {len(present)} {noun}"


def pod_footprint(pod_spec: dict[str, Any], *, limit_ranges: Iterable[dict[str, Any]] = (), apply_defaults: bool = True) -> Footprint:
    """One pod's quota usage, keyed as quotas name resources (cpu, requests.cpu, limits.memory, pods...).

    apply_defaults=False is for pods read back from the cluster: admission already defaulted them.
    """
    containers, units, problems = admitted_containers(pod_spec, limit_ranges if apply_defaults else ())
    requests, requests_how = aggregate(containers, "requests")
    limits, limits_how = aggregate(containers, "limits")
    pod_requests, pod_limits = dict(requests), dict(limits)

    pod_resources = pod_spec.get("resources") or {}
    pod_level_requests, pod_request_units = _resources(pod_resources.get("requests"), "pod resources.requests")
    pod_level_limits, pod_limit_units = _resources(pod_resources.get("limits"), "pod resources.limits")
    for res, value in pod_level_limits.items():
        # pod-level limits without pod-level requests default the requests, as for containers
        pod_level_requests.setdefault(res, value)
    for source, target, how in ((pod_level_requests, requests, requests_how), (pod_level_limits, limits, limits_how)):
        for res, value in source.items():
            if res in _POD_LEVEL or res.startswith("hugepages-"):
                target[res] = value
                how[res] = "pod-level spec.resources"
    for unit_map in (pod_limit_units, pod_request_units):
        for res, unit in unit_map.items():
            if unit:
                units.setdefault(res, unit)

    overhead, overhead_units = _resources(pod_spec.get("overhead"), "spec.overhead")
    for res, unit in overhead_units.items():
        if unit:
            units.setdefault(res, unit)
    before_overhead = {"requests": dict(requests), "limits": dict(limits)}
    for res, value in overhead.items():
        requests[res] = requests.get(res, Fraction(0)) + value
        if limits.get(res):  # overhead adds only to limits that are set and non-zero
            limits[res] = limits[res] + value

    usage: dict[str, Fraction] = {"pods": Fraction(1), "count/pods": Fraction(1)}
    explain: dict[str, str] = {"pods": "1 pod", "count/pods": "1 pod"}
    out_units: dict[str, str] = {}
    totals = {"requests": (requests, requests_how), "limits": (limits, limits_how)}

    def put(quota_name: str, res: str, which: str) -> None:
        values, how = totals[which]
        final = values[res]
        before = before_overhead[which].get(res, Fraction(0))
        suffix = units.get(res, "")
        if how.get(res):
            text = f"{format_quantity(before, res, suffix=suffix)} ({how[res]})"
        else:
            text = _explain_sum(containers, which, res, suffix) or format_quantity(before, res, suffix=suffix)
        if final != before:
            text += f" + {format_quantity(final - before, res, suffix=suffix)} overhead"
        usage[quota_name] = final
        out_units[quota_name] = suffix
        explain[quota_name] = text

    for res in requests:
        if res in _BARE_REQUEST_NAMES or res.startswith("hugepages-"):
            put(res, res, "requests")
            put(f"requests.{res}", res, "requests")
        elif _is_extended(res):
            put(f"requests.{res}", res, "requests")
    for res in limits:
        if res in _LIMIT_NAMES:
            put(f"limits.{res}", res, "limits")

    qos_values = list(pod_level_requests.items()) + list(pod_level_limits.items())
    for container in containers:
        qos_values += list(container.requests.items()) + list(container.limits.items())
    best_effort = not any(res in ("cpu", "memory") and value > 0 for res, value in qos_values)

    deadline = pod_spec.get("activeDeadlineSeconds")
    affinity = pod_spec.get("affinity") or {}
    return Footprint(
        usage=usage,
        explain=explain,
        units=out_units,
        containers=containers,
        best_effort=best_effort,
        terminating=deadline is not None and int(deadline) >= 0,
        priority_class=pod_spec.get("priorityClassName") or "",
        cross_namespace_affinity=_uses_cross_namespace_affinity(affinity),
        pod_requests=pod_requests,
        pod_limits=pod_limits,
        problems=problems,
    )


def _uses_cross_namespace_affinity(affinity: dict[str, Any]) -> bool:
    for kind in ("podAffinity", "podAntiAffinity"):
        section = affinity.get(kind) or {}
        terms = list(section.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [w.get("podAffinityTerm") or {} for w in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
        for term in terms:
            if term.get("namespaces") or term.get("namespaceSelector") is not None:
                return True
    return False
