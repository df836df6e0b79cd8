# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""What image_puller_daemonset does with its parameters: apply or delete, wait, report.

Raises ImagePullerError carrying the partial result; the module turns it into fail_json.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import (
    adopt, apply, deploy, info, info_runner, kube, prune, readiness, rollout,
)
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.api import FIELD_MANAGER, DaemonSetApi
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import connect
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.preflight import ClusterReader
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.retry import Retrier


def _shown(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The object as returned to the user: managedFields are long and say nothing to a reader."""
    if not obj:
        return {}
    shown = dict(obj)
    shown["metadata"] = {key: value for key, value in (obj.get("metadata") or {}).items() if key != "managedFields"}
    return shown


def _applied_at(obj: dict[str, Any] | None) -> datetime.datetime | None:
    """When our field manager last changed the object (server time): older controller events are not news."""
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply":
            return kube.parse_time(entry.get("time"))
    return None


def _definitions(params: dict[str, Any]) -> list[dict[str, Any]]:
    """definition, or each of definitions (one DaemonSet per architecture), checked: one namespace, unique names."""
    given = params.get("definitions") or ([params["definition"]] if params.get("definition") else [])
    if not given:
        raise ImagePullerError("give definition (one DaemonSet) or definitions (a list of them)")
    definitions = [apply.prepare_definition(definition, params.get("namespace"), state=params["state"]) for definition in given]
    namespaces = sorted({definition["metadata"]["namespace"] for definition in definitions})
    if len(namespaces) > 1:
        raise ImagePullerError(f"the DaemonSets of definitions must share one namespace, got {', '.join(namespaces)}")
    names = [definition["metadata"]["name"] for definition in definitions]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ImagePullerError(f"definitions names DaemonSet {', '.join(twice)} more than once")
    return definitions


def run(module: Any) -> dict[str, Any]:
    """Run the module; returns the result for exit_json (without the pods by node when summary_nodes is false)."""
    if module.params.get("summary_nodes", True):
        return _run(module)
    try:
        return without_nodes(_run(module))
    except ImagePullerError as exc:
        exc.result = without_nodes(exc.result)
        raise


def without_nodes(result: dict[str, Any]) -> dict[str, Any]:
    """The result with an empty summary.nodes, also in each of daemonsets (the rest as it is)."""

    def trimmed(one: dict[str, Any]) -> dict[str, Any]:
        summary = one.get("summary")
        if not isinstance(summary, dict) or not summary.get("nodes"):
            return one
        return {**one, "summary": {**summary, "nodes": []}}

    result = trimmed(result)
    if isinstance(result.get("daemonsets"), list):
        result = {**result, "daemonsets": [trimmed(one) if isinstance(one, dict) else one for one in result["daemonsets"]]}
    return result


def _run(module: Any) -> dict[str, Any]:
    params = module.params
    if params["wait_timeout"] < 0:
        raise ImagePullerError(f"wait_timeout must be 0 or more seconds, got {params['wait_timeout']}")
    definitions = _definitions(params)
    definition = definitions[0]
    deadline = time.monotonic() + params["wait_timeout"]
    # the API server going away (restart, overload) is ridden through until wait_timeout, for every call
    retrier = Retrier(deadline=deadline)
    client = retrier.call("could not connect to the API server", lambda: connect(module))
    apis = [DaemonSetApi(client, namespace=d["metadata"]["namespace"], name=d["metadata"]["name"], retrier=retrier) for d in definitions]
    wait = params["wait"] and not module.check_mode

    def remaining() -> float:
        return max(0.0, deadline - time.monotonic())

    owners = params.get("owner_labels") or {}
    namespace = definition["metadata"]["namespace"]
    if params.get("upstream_check"):
        # before any write, also before a removal: an upstream controller would undo or lose what this run does
        adopt.refuse_upstream(client, retrier, namespace)
    if params["state"] == "absent":
        # the definitions, then every other DaemonSet of this instance (one per architecture)
        names = [api.name for api in apis]
        extra = prune.others(client, retrier, namespace, owners, keep=names)
        apis += [DaemonSetApi(client, namespace=namespace, name=name, retrier=retrier) for name in extra]
        results = [_absent(module, api, wait=wait, remaining=remaining) for api in apis]
        if len(results) > 1 and module._diff:  # pylint: disable=protected-access
            for api, one in zip(apis, results):
                one["diff"] = {**one["diff"], "before_header": api.ref, "after_header": api.ref}
        return _combined(module, results, names + extra)
    prepared = None
    if deploy.wanted(params):
        # the namespace, quota pre-flight, other objects and restart of a whole deploy, in this one run
        prepared = deploy.prepare(params, client, retrier, definitions, check_mode=module.check_mode)
    if len(definitions) == 1:
        result = _present(module, apis[0], definition, wait=wait, remaining=remaining, prepared=prepared)
        result["summary_lines"] = _summary_lines(client, retrier, definition, result, check_mode=module.check_mode, waited=wait)
    else:
        result = _present_all(module, apis, definitions, wait=wait, remaining=remaining, prepared=prepared)
        result["summary_lines"] = [line for one, d in zip(result["daemonsets"], definitions)
                                   for line in _summary_lines(client, retrier, d, one, check_mode=module.check_mode, waited=wait)]
    if owners:
        # DaemonSets of this instance no longer wanted (another shape, an architecture gone), after the rollout
        _prune(module, client, retrier, namespace, owners, [api.name for api in apis], result, wait=wait, remaining=remaining)
    return result


def _prune(module: Any, client: Any, retrier: Retrier, namespace: str, owners: dict[str, str], keep: list[str],
           result: dict[str, Any], *, wait: bool, remaining: Any) -> None:
    pruned = []
    for name in prune.others(client, retrier, namespace, owners, keep=keep):
        gone = _absent(module, DaemonSetApi(client, namespace=namespace, name=name, retrier=retrier), wait=wait, remaining=remaining)
        if gone["changed"]:
            pruned.append(name)
            result["changed"] = True
            if module._diff:  # pylint: disable=protected-access
                ref = f"DaemonSet {namespace}/{name}"
                diffs = result["diff"] if isinstance(result.get("diff"), list) else [result["diff"]] if result.get("diff") else []
                result["diff"] = diffs + [{**gone["diff"], "before_header": ref, "after_header": ref}]
    result["pruned"] = pruned


def _combined(module: Any, results: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One result for several DaemonSets: the first's keys (today's single result), and each in daemonsets."""
    if len(results) == 1:
        return results[0]
    combined = {key: value for key, value in results[0].items() if key != "diff"}
    combined["changed"] = any(one["changed"] for one in results)
    combined["recreated"] = any(one.get("recreated") for one in results)
    reasons = [f"{name}: {one['recreate_reason']}" for name, one in zip(names, results) if one.get("recreate_reason")]
    combined["recreate_reason"] = "; ".join(reasons) or None
    combined["problems"] = [problem for one in results for problem in one.get("problems") or []]
    combined["daemonsets"] = [{"name": name, **{k: v for k, v in one.items() if k != "diff"}} for name, one in zip(names, results)]
    if module._diff:  # pylint: disable=protected-access
        combined["diff"] = [one["diff"] for one in results if one.get("diff")]
    return combined


def _present_all(module: Any, apis: list[DaemonSetApi], definitions: list[dict[str, Any]], *, wait: bool, remaining: Any,
                 prepared: deploy.Prepared | None) -> dict[str, Any]:
    """Several DaemonSets (one per architecture): apply each, then wait for each."""
    states = [_apply(module, api, d, remaining=remaining, prepared=prepared) for api, d in zip(apis, definitions)]
    results = []
    for api, (applied, result) in zip(apis, states):
        if module._diff:  # pylint: disable=protected-access
            result["diff"] = {**result["diff"], "before_header": api.ref, "after_header": api.ref}
        results.append(result if module.check_mode else
                       _wait(module, api, applied, result, wait=wait, remaining=remaining, restarted=prepared is not None and prepared.restarted))
    combined = _combined(module, results, [api.name for api in apis])
    if prepared is not None:
        combined.update(prepared.result())
        combined["changed"] = combined["changed"] or prepared.changed
        if module._diff:  # pylint: disable=protected-access
            combined["diff"] = prepared.diffs() + combined["diff"]
    return combined


def _summary_lines(client: Any, retrier: Retrier, definition: dict[str, Any], result: dict[str, Any], *,
                   check_mode: bool, waited: bool) -> list[str]:
    """What image_puller_info's summary says: from the DaemonSet's status when that says the rollout is complete (no
    node or pod read, so a no-op costs the same on any cluster); for a rollout under way that was not waited for,
    from what the look at it read (its counts and problems); else, and in check mode (the cluster as it is, not the
    dry run), from reading the nodes and pods as image_puller_info does."""
    name, namespace = definition["metadata"]["name"], definition["metadata"]["namespace"]
    summary = None if check_mode else info.summary_from_status(result.get("result") or {})
    if summary is None and not check_mode and not waited and not readiness.rollout_status(result.get("result") or {})[0]:
        return info.describe_progress(result["summary"], result.get("problems") or [], name=name, namespace=namespace,
                                      unobserved=readiness.generation_unobserved(result.get("result") or {}))
    if summary is None:
        summary = info_runner.read(ClusterReader(client, retrier=retrier), name=name, namespace=namespace)["summary"]
    return info.describe_summary(summary, name=name, namespace=namespace)


def _warn(module: Any, warnings: list[str]) -> None:
    for warning in warnings:
        module.warn(warning)


def _apply(module: Any, api: DaemonSetApi, definition: dict[str, Any], *, remaining: Any,
           prepared: deploy.Prepared | None) -> tuple[Any, dict[str, Any]]:
    """Apply one DaemonSet (re-created when its selector changes); what was applied, and its result so far."""
    selector = kube.selector_string((definition.get("spec") or {}).get("selector"), what="spec.selector of the definition")

    def wait_gone(uid: str | None) -> None:
        rollout.wait_for_deletion(api, uid=uid, selector=selector, timeout=remaining())

    try:
        applied = apply.apply_present(api, definition, wait_gone=wait_gone)
    except ImagePullerError as exc:
        if prepared is not None:
            exc.result = {**prepared.result(), "changed": prepared.changed, **exc.result}
        raise
    _warn(module, applied.warnings)
    result: dict[str, Any] = {
        "changed": applied.changed,
        "result": _shown(applied.after),
        "recreated": applied.recreated,
        "recreate_reason": applied.recreate_reason,
        "summary": readiness.summarize(applied.after or definition, []),
        "problems": [],
        "diff": apply.make_diff(applied.before, applied.after),
    }
    return applied, result


def _present(module: Any, api: DaemonSetApi, definition: dict[str, Any], *, wait: bool, remaining: Any,
             prepared: deploy.Prepared | None = None) -> dict[str, Any]:
    applied, result = _apply(module, api, definition, remaining=remaining, prepared=prepared)
    diff = result.pop("diff")
    if prepared is not None:
        result.update(prepared.result())
        result["changed"] = applied.changed or prepared.changed
        # one diff per object, the DaemonSet last
        diff = prepared.diffs() + [{**diff, "before_header": api.ref, "after_header": api.ref}]
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = diff
    if module.check_mode:
        return result
    return _wait(module, api, applied, result, wait=wait, remaining=remaining, restarted=prepared is not None and prepared.restarted)


def _wait(module: Any, api: DaemonSetApi, applied: Any, result: dict[str, Any], *, wait: bool, remaining: Any,
          restarted: bool) -> dict[str, Any]:
    if wait and not applied.changed and not restarted and readiness.rollout_status(applied.after or {})[0]:
        # nothing changed and the status says done (kubectl's rule): no pod is read, so a no-op costs the same on any
        # cluster (wait=false is the way to ask for the pods node by node)
        _warn_no_node(module, api, result, wait=wait)
        return result

    try:
        if wait:
            seen = rollout.wait_for_rollout(api, timeout=remaining(), since=_applied_at(applied.after), applied=applied.after)
        else:
            seen = rollout.look(api, since=_applied_at(applied.after))
    except ImagePullerError as exc:
        if "result" in exc.result:
            exc.result["result"] = _shown(exc.result["result"])
        exc.result = {**result, **exc.result}
        raise
    if seen is not None:
        result.update(result=_shown(seen.daemonset), summary=seen.state.summary, problems=seen.problems)
    _warn_no_node(module, api, result, wait=wait)
    return result


def _warn_no_node(module: Any, api: DaemonSetApi, result: dict[str, Any], *, wait: bool) -> None:
    if wait and result["summary"]["desired"] == 0:
        module.warn(f"{api.ref} selects no node (desiredNumberScheduled is 0): check its nodeSelector, affinity and tolerations")


def _absent(module: Any, api: DaemonSetApi, *, wait: bool, remaining: Any) -> dict[str, Any]:
    applied = apply.apply_absent(api)
    result: dict[str, Any] = {"changed": applied.changed, "result": _shown(applied.before), "recreated": False,
                              "recreate_reason": None, "problems": []}
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = apply.make_diff(applied.before, None)
    if wait and applied.before is not None:
        selector = kube.selector_string((applied.before.get("spec") or {}).get("selector"))
        try:
            rollout.wait_for_deletion(api, uid=applied.before["metadata"].get("uid"), selector=selector, timeout=remaining())
        except ImagePullerError as exc:
            exc.result = {**result, **exc.result}
            raise
    return result
