# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""Wait by watching, not by sleeping: until the rollout is done, is hopeless, or time is up.

Each round lists the DaemonSet, its pods and its events, judges them with the
pure readiness and diagnosis functions, then watches for the next change (a
server-side watch from the listed resourceVersion, bounded in time). Any event,
or the watch running out, starts the next round; so a change is seen at once,
and pod problems that do not touch the DaemonSet's status are seen within a
re-list interval.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import diagnosis, readiness
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError

# Longest single watch before listing again; pod-only changes (an image pull failing) are seen this late at worst.
RELIST_SECONDS = 10
# How long every not-ready pod must show only pull or configuration errors before the wait gives up early.
# The kubelet retries pulls with back-off; a short registry outage clears within this, a wrong image does not.
HOPELESS_GRACE_SECONDS = 60


@dataclasses.dataclass
class Rollout:
    """The last state seen: the DaemonSet, where its rollout stands, and its problems."""

    daemonset: dict[str, Any]
    state: readiness.Readiness
    problems: list


def observe(api: Any, *, since: datetime.datetime | None = None) -> tuple[Rollout | None, str | None]:
    """One round of listing: the rollout as it stands and the DaemonSet's resourceVersion (None: it is gone)."""
    daemonset = api.get()
    if daemonset is None:
        return None, None
    selector = readiness.label_selector((daemonset.get("spec") or {}).get("selector"))
    pods = api.list_pods(selector)[0]
    state = readiness.evaluate(daemonset, pods)
    problems = [] if state.done else diagnosis.diagnose(daemonset, pods, api.list_events(), since=since)
    return Rollout(daemonset=daemonset, state=state, problems=problems), (daemonset.get("metadata") or {}).get("resourceVersion")


def is_hopeless(rollout: Rollout) -> bool:
    """Every updated pod that is not ready fails, and every problem is of a kind no waiting fixes.

    Pods not yet created do not make it hopeful: a rolling update creates the
    next pod only once the last one is available, so a pull failure blocks it.
    A refusal to create pods (FailedCreate) or an unschedulable pod does, since
    a quota or a node can change meanwhile.
    """
    state = rollout.state
    if state.done or not state.not_ready_pods:
        return False
    return diagnosis.hopeless(rollout.problems) and all(diagnosis.pod_problems(pod) for pod in state.not_ready_pods)


def _failure(api: Any, rollout: Rollout, headline: str) -> ImagePullerError:
    details = diagnosis.describe_problems(rollout.problems) if rollout.problems else "no pod reports an error"
    return ImagePullerError(f"{api.ref}: {headline}:\n{details}", result=rollout.daemonset, summary=rollout.state.summary,
                            problems=rollout.problems)


def wait_for_rollout(api: Any, *, timeout: float, since: datetime.datetime | None = None,
                     grace: float = HOPELESS_GRACE_SECONDS, clock: Callable[[], float] = time.monotonic) -> Rollout:
    """Watch until the rollout is done; raise ImagePullerError when it is hopeless or time is up."""
    deadline = clock() + timeout
    hopeless_since = None
    while True:
        rollout, resource_version = observe(api, since=since)
        if rollout is None:
            raise ImagePullerError(f"{api.ref} was deleted while waiting for its rollout")
        if rollout.state.done:
            return rollout
        now = clock()
        if is_hopeless(rollout):
            hopeless_since = now if hopeless_since is None else hopeless_since
            if now - hopeless_since >= grace:
                raise _failure(api, rollout, f"the rollout cannot finish ({rollout.state.waiting_for}); "
                                             f"its pods have failed to pull or create containers for {int(now - hopeless_since)}s")
        else:
            hopeless_since = None
        if now >= deadline:
            raise _failure(api, rollout, f"the rollout did not finish within {math.ceil(timeout)}s ({rollout.state.waiting_for})")
        horizon = min(deadline - now, RELIST_SECONDS)
        if hopeless_since is not None:
            horizon = min(horizon, max(1.0, hopeless_since + grace - now))
        # the first change of the DaemonSet (or the end of the watch) starts the next round
        for _event in api.watch_daemonset(resource_version, math.ceil(horizon)):
            break


def _owned_pods(pods: list, uid: str | None) -> list:
    return [pod for pod in pods if any(ref.get("uid") == uid for ref in (pod.get("metadata") or {}).get("ownerReferences") or [])]


def wait_for_deletion(api: Any, *, uid: str | None, selector: str, timeout: float,
                      clock: Callable[[], float] = time.monotonic) -> None:
    """Watch until the DaemonSet with this uid and then all of its pods have left the API."""
    deadline = clock() + timeout
    while True:
        daemonset = api.get()
        metadata = (daemonset or {}).get("metadata") or {}
        if daemonset is not None and metadata.get("uid") == uid:
            # a foreground deletion keeps the DaemonSet until the garbage collector has removed its pods
            waiting_on = "the DaemonSet"
            watch, args = api.watch_daemonset, (metadata.get("resourceVersion"),)
        else:
            pods, resource_version = api.list_pods(selector)
            left = _owned_pods(pods, uid)
            if not left:
                return
            waiting_on = f"{len(left)} pods ({', '.join(sorted(pod['metadata']['name'] for pod in left))})"
            watch, args = api.watch_pods, (selector, resource_version)
        now = clock()
        if now >= deadline:
            raise ImagePullerError(f"{api.ref}: deleted, but after {math.ceil(timeout)}s still waiting for {waiting_on} to go")
        for _event in watch(*args, math.ceil(min(deadline - now, RELIST_SECONDS))):
            break
