# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""Wait by watching, not by sleeping: until the rollout is done, is hopeless, or time is up.

Progress comes from one watch on the DaemonSet: its status carries kubectl's
rule, and each change arrives as an event inside the same watch, so a rollout
of 1,000 pods costs one object per status change, not a listing. Pods are read
only when they can change the verdict, and then cheaply or rarely:

- when the status says done, the pods of the current template are confirmed
  ready from a server-side Table (name, ready count, status, node per pod:
  a few dozen bytes whatever the number of containers);
- when the status has not moved for STALL_SECONDS, the diagnosis (image x
  node x reason) looks at the same Table first, and lists the pods in full only
  when a row shows a reason (ImagePullBackOff, ...) or a sample of the pods
  still without a node has one the scheduler refused (Unschedulable): a
  slow but healthy rollout of 1,000 pods x 50 containers costs rows of a few
  dozen bytes, not 64 MB of pod objects. It looks at most once per
  RELIST_SECONDS while it stays still and pods report problems, half as often
  after each look that found none (up to every MAX_DIAGNOSIS_SECONDS), and
  lists in full once more when time is up, so the failure names what it can.

Each watch goes on from the last change the one before delivered; the
DaemonSet is read again only after a watch that delivered nothing (a quiet
status, the API server restarting, 410 Gone). The calls retry through outages
(retry.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import diagnosis, kube, readiness
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.retry import Unreachable

# Longest single watch before the DaemonSet is read again.
RELIST_SECONDS = 10
# Longest pause between two diagnoses while the last ones found no problem.
MAX_DIAGNOSIS_SECONDS = 60
# How long the DaemonSet's status must stand still before its pods are read for a diagnosis.
STALL_SECONDS = 5
# Pods read one by one when the only rows that show something are pods without a node: during a rollout of 1,000
# nodes the scheduler has not got to dozens of them yet, and a sample says whether it refused any (Unschedulable).
SCHEDULING_READS = 20
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
    selector = kube.selector_string((daemonset.get("spec") or {}).get("selector"))
    pods = api.list_pods(selector)[0]
    state = evaluate(api, daemonset, pods)
    problems = [] if state.done else diagnosis.diagnose(daemonset, pods, api.list_events(), since=since)
    return Rollout(daemonset=daemonset, state=state, problems=problems), (daemonset.get("metadata") or {}).get("resourceVersion")


def look(api: Any, *, since: datetime.datetime | None = None) -> Rollout | None:
    """The rollout as it stands, without waiting (None: the DaemonSet is gone).

    From the pod Table of the current template, as the wait's diagnosis looks
    (glance); the pods are listed in full only when a row shows a problem to
    explain, so a look at an unfinished rollout of 1,000 pods x 50 images
    reads rows of a few dozen bytes, not every pod object.
    """
    daemonset = api.get()
    if daemonset is None:
        return None
    seen = glance(api, daemonset, since=since)
    if seen is not None:
        return seen
    return observe(api, since=since)[0]


def glance(api: Any, daemonset: dict[str, Any], *, since: datetime.datetime | None = None) -> Rollout | None:
    """The rollout from the pod Table of the current template, when no row shows a problem (None: one does)."""
    rows = updated_rows(api, daemonset)
    flagged = [row for row in rows if readiness.row_shows_problem(row)]
    if flagged and not waiting_for_the_scheduler(api, flagged):
        return None
    state = readiness.confirm(daemonset, rows)
    # no pod to explain; the controller may still be refused pods (FailedCreate)
    problems = [] if state.done else diagnosis.creation_problems(daemonset, api.list_events(), since=since)
    return Rollout(daemonset=daemonset, state=state, problems=problems)


def waiting_for_the_scheduler(api: Any, flagged: list[dict[str, Any]]) -> bool:
    """Whether the flagged rows are all pods without a node of which none read (SCHEDULING_READS, in node order)
    has been refused by the scheduler: pods it has not got to yet, nothing for a diagnosis to explain."""
    if not all(row.get("status") == "Pending" and row.get("node") is None for row in flagged):
        return False
    for row in flagged[:SCHEDULING_READS]:
        pod = api.get_pod(row["pod"])
        if pod is not None and diagnosis.pod_problems(pod):
            return False
    return True


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


def progress(daemonset: dict[str, Any]) -> tuple:
    """The figures whose change means the rollout moved."""
    status = daemonset.get("status") or {}
    return tuple(status.get(key) for key in ("observedGeneration", "desiredNumberScheduled", "updatedNumberScheduled",
                                             "numberAvailable", "numberReady", "currentNumberScheduled"))


def overwritten(applied: dict[str, Any] | None, live: dict[str, Any]) -> str | None:
    """Why the live DaemonSet no longer runs the pod template this task applied (None: it still does).

    Another writer (a second deploy at the same time) changed the template:
    waiting on would report its rollout as ours. Both objects come from the
    API server, so its defaults are filled in on both sides.
    """
    if not applied:
        return None
    generation = (live.get("metadata") or {}).get("generation")
    if generation == (applied.get("metadata") or {}).get("generation"):
        return None
    ours, theirs = (((obj.get("spec") or {}).get("template")) for obj in (applied, live))
    if ours == theirs:
        return None
    mine = ", ".join(f"{c['container']}={c['image']}" for c in readiness.daemonset_images(applied))
    now = ", ".join(f"{c['container']}={c['image']}" for c in readiness.daemonset_images(live))
    return (f"another writer changed its pod template while waiting (generation {generation}); "
            f"it now runs [{now}], this task applied [{mine}]")


def updated_rows(api: Any, daemonset: dict[str, Any]) -> list[dict[str, Any]]:
    """The Table rows of the pods of the current template.

    By template generation first; when that finds fewer pods than the status
    wants, by the current revision's hash, which also finds the pods the
    controller kept after the template went back to an earlier one.
    """
    rows = readiness.pod_rows(api.pod_table(readiness.updated_selector(daemonset)))
    desired = ((daemonset.get("status") or {}).get("desiredNumberScheduled")) or 0
    if len(rows) < desired and readiness.template_generation(daemonset) is not None:
        revision_hash = api.revision_hash(daemonset)
        if revision_hash:
            rows = readiness.pod_rows(api.pod_table(readiness.updated_selector(daemonset, revision_hash)))
    return rows


def evaluate(api: Any, daemonset: dict[str, Any], pods: list[dict[str, Any]]) -> readiness.Readiness:
    """readiness.evaluate over the pods, with the current revision's hash when the generation does not account for them all."""
    state = readiness.evaluate(daemonset, pods)
    if not state.done and state.missing_pods:
        state = readiness.evaluate(daemonset, pods, api.revision_hash(daemonset))
    return state


def confirm(api: Any, daemonset: dict[str, Any]) -> Rollout:
    """The verdict when the status says done: are the pods of the current template all ready? (cheap rows, no objects)"""
    state = readiness.confirm(daemonset, updated_rows(api, daemonset))
    return Rollout(daemonset=daemonset, state=state, problems=[])


class _Waiter:
    """The state of one wait; one method per kind of look at the cluster."""

    def __init__(self, api: Any, *, timeout: float, since: datetime.datetime | None, grace: float, clock: Callable[[], float],
                 applied: dict[str, Any] | None = None) -> None:
        self.api, self.since, self.grace, self.clock, self.applied = api, since, grace, clock, applied
        self.deadline = clock() + timeout
        self.timeout = timeout
        self.last: Rollout | None = None
        self.hopeless_since: float | None = None
        self.diagnosed_at: float | None = None
        # pause between diagnoses: RELIST_SECONDS, doubled after each one that found no problem
        self.diagnosis_every: float = RELIST_SECONDS
        self.moved_at = clock()
        self.figures: tuple = ()
        self.daemonset: dict[str, Any] | None = None

    def note(self, daemonset: dict[str, Any]) -> None:
        self.daemonset = daemonset
        figures = progress(daemonset)
        if figures != self.figures:
            self.figures, self.moved_at = figures, self.clock()
            self.hopeless_since = None

    def diagnosis_due(self, now: float) -> bool:
        if now >= self.deadline:
            return True
        if now - self.moved_at < STALL_SECONDS:
            return False
        if self.diagnosed_at is None or now - self.diagnosed_at >= self.diagnosis_every:
            return True
        return self.hopeless_since is not None and now - self.hopeless_since >= self.grace

    def next_look(self, now: float) -> float:
        """Seconds until something is due even if the DaemonSet does not change.

        A diagnosis (and so the hopeless verdict, which comes from one) needs the status to have stood still for
        STALL_SECONDS, so it is never due before that; while the status moves the watch runs for STALL_SECONDS at
        least, rather than ending every second once a diagnosis is overdue.
        """
        due = [self.deadline - now, RELIST_SECONDS]
        diagnosis = self.moved_at + STALL_SECONDS
        if self.diagnosed_at is not None:
            next_one = self.diagnosed_at + self.diagnosis_every
            if self.hopeless_since is not None:
                next_one = min(next_one, self.hopeless_since + self.grace)
            diagnosis = max(diagnosis, next_one)
        due.append(diagnosis - now)
        return max(1.0, min(due))

    def diagnose(self, daemonset: dict[str, Any], now: float) -> Rollout:
        seen = glance(self.api, daemonset, since=self.since) if now < self.deadline else None
        if seen is None:
            pods = self.api.list_pods(kube.selector_string((daemonset.get("spec") or {}).get("selector")))[0]
            state = evaluate(self.api, daemonset, pods)
            problems = [] if state.done else diagnosis.diagnose(daemonset, pods, self.api.list_events(), since=self.since)
            seen = Rollout(daemonset=daemonset, state=state, problems=problems)
        self.diagnosed_at = now
        self.diagnosis_every = RELIST_SECONDS if seen.problems else min(MAX_DIAGNOSIS_SECONDS, self.diagnosis_every * 2)
        if is_hopeless(seen):
            self.hopeless_since = now if self.hopeless_since is None else self.hopeless_since
        else:
            self.hopeless_since = None
        return seen

    def judge(self, daemonset: dict[str, Any]) -> Rollout | None:
        """The finished rollout, or None to go on watching; raises when it is hopeless, replaced or time is up."""
        self.note(daemonset)
        replaced = overwritten(self.applied, daemonset)
        if replaced:
            raise ImagePullerError(f"{self.api.ref}: {replaced}; this wait ends without a verdict on what it applied",
                                   result=daemonset, summary=readiness.summarize(daemonset, []), problems=[])
        if readiness.rollout_status(daemonset)[0]:
            self.last = confirm(self.api, daemonset)
            if self.last.state.done:
                return self.last
        now = self.clock()
        if self.diagnosis_due(now):
            self.last = self.diagnose(daemonset, now)
            if self.last.state.done:
                return self.last
            if self.hopeless_since is not None and now - self.hopeless_since >= self.grace:
                raise _failure(self.api, self.last, f"the rollout cannot finish ({self.last.state.waiting_for}); its pods have "
                                                    f"failed to pull or create containers for {int(now - self.hopeless_since)}s")
            if now >= self.deadline:
                raise _failure(self.api, self.last, f"the rollout did not finish within {math.ceil(self.timeout)}s "
                                                    f"({self.last.state.waiting_for})")
        return None

    def follow(self, daemonset: dict[str, Any]) -> dict[str, Any] | None:
        """Watch the DaemonSet until a change worth a look, or until something is due.

        The last change the watch delivered is the DaemonSet as it is: the next watch goes on from its
        resourceVersion and replays whatever came after, so a moving rollout is followed without reading the
        DaemonSet again. It is read again only after a watch that delivered nothing (a quiet status, a watch
        that broke, an outage, or a resourceVersion too old, which some client versions end quietly) or a deletion.
        """
        resource_version = (daemonset.get("metadata") or {}).get("resourceVersion")
        latest = None
        for kind, changed in self.api.watch_daemonset(resource_version, math.ceil(self.next_look(self.clock()))):
            if kind == "DELETED":
                return self.api.get()
            if kind not in ("ADDED", "MODIFIED") or not changed:
                continue
            latest = changed
            self.note(changed)
            if readiness.rollout_status(changed)[0]:
                # the watch delivers the object as it is now: no second read before the pods are confirmed
                return changed
        return latest if latest is not None else self.api.get()


def wait_for_rollout(api: Any, *, timeout: float, since: datetime.datetime | None = None, grace: float = HOPELESS_GRACE_SECONDS,
                     clock: Callable[[], float] = time.monotonic, applied: dict[str, Any] | None = None) -> Rollout:
    """Watch until the rollout is done; raise ImagePullerError when it is hopeless, time is up or the API server stays away.

    applied: the DaemonSet as this task's apply returned it, where the wait starts from (not read again); the wait
    fails when another writer replaces its template.
    """
    waiter = _Waiter(api, timeout=timeout, since=since, grace=grace, clock=clock, applied=applied)
    try:
        daemonset = applied if applied is not None else api.get()
        while True:
            if daemonset is None:
                raise ImagePullerError(f"{api.ref} was deleted while waiting for its rollout")
            finished = waiter.judge(daemonset)
            if finished is not None:
                return finished
            daemonset = waiter.follow(daemonset)
    except Unreachable as exc:
        last = waiter.daemonset
        if last is None:
            raise
        problems = waiter.last.problems if waiter.last is not None and waiter.last.daemonset is last else []
        raise ImagePullerError(f"{exc.msg}\nlast seen: {readiness.rollout_status(last)[1]}", result=last,
                               summary=readiness.summarize(last, []), problems=problems, **exc.result) from exc


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
