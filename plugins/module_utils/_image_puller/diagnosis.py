# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""Why the pods of a DaemonSet are not running: which image, on which node, and why.

Pure: takes the DaemonSet, its pods and its events as plain dicts (as the API
returns them) and imports nothing of the cluster.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.kube import owned_pods, parse_time, target_node

# The image cannot be had; the kubelet keeps retrying, but only a change of the image fixes it.
PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
# The container cannot be created from its spec (a missing ConfigMap or Secret key, for instance).
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
# Reasons that no waiting fixes: a rollout that only shows these for a while is hopeless.
HOPELESS_REASONS = PULL_REASONS | CONFIG_REASONS
# Every waiting reason reported as a problem. ContainerCreating and PodInitializing are progress, not problems.
WAITING_PROBLEM_REASONS = HOPELESS_REASONS | frozenset({"CrashLoopBackOff", "RunContainerError"})
# Events of the DaemonSet controller that say it could not create a pod (quota, admission, PodSecurity).
FAILED_CREATE_REASONS = frozenset({"FailedCreate"})
# How many problems the message lists before it only counts the rest.
MESSAGE_LINES = 20

PROBLEM_KEYS = ("node", "pod", "container", "init_container", "image", "reason", "message")


def _problem(**fields: Any) -> dict[str, Any]:
    problem = dict.fromkeys(PROBLEM_KEYS)
    problem["init_container"] = False
    problem.update(fields)
    return problem


def _container_problems(pod: Mapping[str, Any], *, init: bool) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    spec_key, status_key = ("initContainers", "initContainerStatuses") if init else ("containers", "containerStatuses")
    images = {c.get("name"): c.get("image") for c in spec.get(spec_key) or []}
    problems = []
    for cstatus in status.get(status_key) or []:
        waiting = (cstatus.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason not in WAITING_PROBLEM_REASONS:
            continue
        message = waiting.get("message") or ""
        terminated = (cstatus.get("lastState") or {}).get("terminated") or {}
        if reason == "CrashLoopBackOff" and terminated:
            message = f"{message} (last exit: {terminated.get('reason') or 'Error'}, code {terminated.get('exitCode')})".strip()
        name = cstatus.get("name")
        problems.append(_problem(
            node=target_node(pod),
            pod=(pod.get("metadata") or {}).get("name"),
            container=name,
            init_container=init,
            # the spec's image is what the user wrote; the status may hold a resolved digest
            image=images.get(name) or cstatus.get("image"),
            reason=reason,
            message=message,
        ))
    return problems


def _scheduling_problem(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    status = pod.get("status") or {}
    if status.get("phase") != "Pending":
        return None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False" and condition.get("reason") == "Unschedulable":
            return _problem(
                node=target_node(pod),
                pod=(pod.get("metadata") or {}).get("name"),
                reason="Unschedulable",
                message=condition.get("message") or "",
            )
    return None


def pod_problems(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The problems of one pod: unschedulable, or containers (init ones first) waiting for a bad reason."""
    scheduling = _scheduling_problem(pod)
    problems = [scheduling] if scheduling else []
    return problems + _container_problems(pod, init=True) + _container_problems(pod, init=False)


def event_time(event: Mapping[str, Any]) -> datetime.datetime | None:
    """When an event (core/v1) was last seen."""
    series = event.get("series") or {}
    for value in (series.get("lastObservedTime"), event.get("lastTimestamp"), event.get("eventTime"), event.get("firstTimestamp")):
        parsed = parse_time(value)
        if parsed:
            return parsed
    return None


def creation_problems(daemonset: Mapping[str, Any], events: Iterable[Mapping[str, Any]],
                      *, since: datetime.datetime | None = None) -> list[dict[str, Any]]:
    """FailedCreate events of the DaemonSet (quota, LimitRange, PodSecurity refusals), newest message once.

    since: ignore events last seen before it (a refusal of an earlier rollout is not news).
    """
    meta = daemonset.get("metadata") or {}
    latest: dict[str, tuple[datetime.datetime | None, Mapping[str, Any]]] = {}
    for event in events:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        if involved.get("kind") != "DaemonSet" or involved.get("name") != meta.get("name"):
            continue
        if involved.get("uid") and meta.get("uid") and involved["uid"] != meta["uid"]:
            continue
        if event.get("reason") not in FAILED_CREATE_REASONS:
            continue
        seen = event_time(event)
        if since is not None and seen is not None and seen < since:
            continue
        message = event.get("message") or event.get("note") or ""
        if message not in latest or (seen and (latest[message][0] is None or seen > latest[message][0])):
            latest[message] = (seen, event)
    return [
        _problem(reason=event.get("reason"), message=message)
        for message, (_seen, event) in sorted(latest.items(), key=lambda item: item[0])
    ]


def diagnose(daemonset: Mapping[str, Any], pods: Iterable[Mapping[str, Any]],
             events: Iterable[Mapping[str, Any]] = (), *, since: datetime.datetime | None = None) -> list[dict[str, Any]]:
    """Every problem of the DaemonSet's rollout, pods in node order, then the controller's refusals."""
    problems = [problem for pod in owned_pods(pods, daemonset) for problem in pod_problems(pod)]
    return problems + creation_problems(daemonset, events, since=since)


def describe_problem(problem: Mapping[str, Any]) -> str:
    """One line for a person: what failed, where, and the reason the cluster gave."""
    where = f' on node "{problem["node"]}"' if problem.get("node") else ""
    if problem.get("container"):
        kind = "init container" if problem.get("init_container") else "container"
        subject = f'image "{problem.get("image")}" ({kind} "{problem["container"]}"){where}'
    elif problem.get("pod"):
        subject = f'pod "{problem["pod"]}"{where}'
    else:
        subject = "the DaemonSet controller"
    text = f"{subject}: {problem.get('reason')}"
    if problem.get("message"):
        text += f": {problem['message']}"
    return text


def problem_lines(problems: list[Mapping[str, Any]], *, limit: int = MESSAGE_LINES) -> list[str]:
    """The problems one per line, at most limit lines and a count of the rest."""
    lines = [describe_problem(problem) for problem in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more (see 'problems' in the result)")
    return lines


def describe_problems(problems: list[Mapping[str, Any]], *, limit: int = MESSAGE_LINES) -> str:
    """problem_lines as one text, for a failure message."""
    return "\n".join(problem_lines(problems, limit=limit))


def hopeless(problems: Iterable[Mapping[str, Any]]) -> bool:
    """Whether these problems are all of a kind no waiting fixes (and there is at least one)."""
    reasons = [problem.get("reason") for problem in problems]
    return bool(reasons) and all(reason in HOPELESS_REASONS for reason in reasons)
