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

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import adopt, apply, deploy, info, info_runner, kube, readiness, rollout
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


def run(module: Any) -> dict[str, Any]:
    """Run the module; returns the result for exit_json."""
    params = module.params
    if params["wait_timeout"] < 0:
        raise ImagePullerError(f"wait_timeout must be 0 or more seconds, got {params['wait_timeout']}")
    definition = apply.prepare_definition(params["definition"], params.get("namespace"), state=params["state"])
    deadline = time.monotonic() + params["wait_timeout"]
    # the API server going away (restart, overload) is ridden through until wait_timeout, for every call
    retrier = Retrier(deadline=deadline)
    client = retrier.call("could not connect to the API server", lambda: connect(module))
    api = DaemonSetApi(client, namespace=definition["metadata"]["namespace"], name=definition["metadata"]["name"], retrier=retrier)
    wait = params["wait"] and not module.check_mode

    def remaining() -> float:
        return max(0.0, deadline - time.monotonic())

    if params.get("upstream_check"):
        # before any write, also before a removal: an upstream controller would undo or lose what this run does
        adopt.refuse_upstream(client, retrier, definition["metadata"]["namespace"])
    if params["state"] == "absent":
        return _absent(module, api, wait=wait, remaining=remaining)
    prepared = None
    if deploy.wanted(params):
        # the namespace, quota pre-flight, other objects and restart of a whole deploy, in this one run
        prepared = deploy.prepare(params, client, retrier, definition, check_mode=module.check_mode)
    result = _present(module, api, definition, wait=wait, remaining=remaining, prepared=prepared)
    result["summary_lines"] = _summary_lines(client, retrier, definition, result, check_mode=module.check_mode)
    return result


def _summary_lines(client: Any, retrier: Retrier, definition: dict[str, Any], result: dict[str, Any], *,
                   check_mode: bool) -> list[str]:
    """What image_puller_info's summary says: from the DaemonSet's status when that says the rollout is complete (no
    node or pod read, so a no-op costs the same on any cluster), else, and in check mode (the cluster as it is, not
    the dry run), from reading the nodes and pods as image_puller_info does."""
    name, namespace = definition["metadata"]["name"], definition["metadata"]["namespace"]
    summary = None if check_mode else info.summary_from_status(result.get("result") or {})
    if summary is None:
        summary = info_runner.read(ClusterReader(client, retrier=retrier), name=name, namespace=namespace)["summary"]
    return info.describe_summary(summary, name=name, namespace=namespace)


def _warn(module: Any, warnings: list[str]) -> None:
    for warning in warnings:
        module.warn(warning)


def _present(module: Any, api: DaemonSetApi, definition: dict[str, Any], *, wait: bool, remaining: Any,
             prepared: deploy.Prepared | None = None) -> dict[str, Any]:
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
    }
    diff = apply.make_diff(applied.before, applied.after)
    if prepared is not None:
        result.update(prepared.result())
        result["changed"] = applied.changed or prepared.changed
        # one diff per object, the DaemonSet last
        diff = prepared.diffs() + [{**diff, "before_header": api.ref, "after_header": api.ref}]
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = diff
    if module.check_mode:
        return result
    restarted = prepared is not None and prepared.restarted
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
