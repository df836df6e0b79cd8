# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The clusters_summary filter; documented in clusters_summary.yml beside this file.

clusters_summary turns what each cluster of a play reported into one summary over all of them.
Its input is one small mapping per cluster (see clusters_summary.yml):

    cluster  the inventory host name
    rollout  {summary: {desired, ready, updated, images}, problems: [...]}: the result of
             kip.image_puller.image_puller_daemonset
    info     the result of kip.image_puller.image_puller_info (its summary), for a read-only status
    quota    the result of kip.image_puller.image_puller_quota (fits, unchanged, shortfalls, msg)
    error    why the run on this cluster stopped (a string or a list of strings)

Clusters named in ``clusters`` without an entry are listed as not run. Strings given in
``secrets`` (tokens) are masked wherever they occur in the summary.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

MASK = "********"
# What a successful run without a rollout (remove, or a check-mode deploy into a new namespace) is called.
DONE_STATES = {"deploy": "not rolled out", "remove": "removed", "status": "not deployed"}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "; ".join(_text(v) for v in value if v not in (None, ""))
    return str(value)


def _mask(text: str, secrets) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def _ran(result) -> bool:
    """A registered result of a task that ran (not skipped, not missing)."""
    return isinstance(result, Mapping) and bool(result) and not result.get("skipped")


def _quota_verdict(quota) -> str:
    if not _ran(quota):
        return "not checked"
    if quota.get("unchanged"):
        return "fits (pod template unchanged, not checked again)"
    if quota.get("fits") is True:
        return "fits"
    if quota.get("fits") is False:
        return "does not fit: " + (_text(quota.get("shortfalls")) or _text(quota.get("msg")) or "see the quota task")
    if quota.get("failed"):
        return "check failed: " + (_text(quota.get("msg")) or "no message")
    return "not checked"


def _problem(problem: Mapping) -> dict:
    return {
        "image": problem.get("image"),
        "node": problem.get("node"),
        "reason": problem.get("reason"),
        "message": problem.get("message"),
        "container": problem.get("container"),
        "pod": problem.get("pod"),
    }


def _cluster(entry, action: str, secrets: list) -> dict:
    if not isinstance(entry, Mapping) or not entry.get("cluster"):
        raise AnsibleFilterError(f"clusters_summary expects mappings with at least 'cluster', got {type(entry).__name__}")
    rollout, info = entry.get("rollout"), entry.get("info")
    summary = rollout.get("summary") if _ran(rollout) and isinstance(rollout.get("summary"), Mapping) else None
    problems = [_problem(p) for p in (rollout.get("problems") or [])] if _ran(rollout) else []
    if summary is None and _ran(info) and isinstance(info.get("summary"), Mapping) and info["summary"].get("exists"):
        summary, problems = _from_info(info["summary"])
    error = _text(entry.get("error"))
    if problems and error:
        error = error.splitlines()[0]  # the rollout's message goes on to list the problems, listed apart here
    row = {
        "cluster": str(entry["cluster"]),
        "nodes_eligible": None,
        "nodes_ready": None,
        "images": [],
        "cached_everywhere": None,
        "problems": problems,
        "quota": _quota_verdict(entry.get("quota")),
        "error": error or None,
    }
    if summary is not None:
        desired = int(summary.get("desired") or 0)
        ready = int(summary.get("ready") or 0)
        updated = int(summary.get("updated") or 0)
        row["nodes_eligible"] = desired
        row["nodes_ready"] = ready
        row["images"] = [i.get("image") for i in summary.get("images") or [] if isinstance(i, Mapping)]
        # Every eligible node runs a ready pod of the current template: each of its images is on that node.
        row["cached_everywhere"] = desired > 0 and ready == desired and updated == desired and not problems
    if error:
        row["state"] = "failed"
    elif row["cached_everywhere"]:
        row["state"] = "converged"
    elif summary is not None:
        row["state"] = "not converged"
    else:
        row["state"] = DONE_STATES.get(action, "done")
    # Everything that came from the cluster or a task is text a token could hide in.
    for key in ("error", "quota"):
        if row[key]:
            row[key] = _mask(row[key], secrets)
    for problem in problems:
        for key in ("message", "reason"):
            if problem[key]:
                problem[key] = _mask(str(problem[key]), secrets)
    return row


def _from_info(summary: Mapping) -> tuple[dict, list[dict]]:
    """image_puller_info's summary in the rollout shape: its counts, and each image an eligible node lacks for a reason."""
    counts = {"desired": summary.get("eligible"), "ready": summary.get("ready"), "updated": summary.get("updated"),
              "images": [{"image": image} for image in summary.get("images") or []]}
    problems = [_problem(item) for item in summary.get("lacking") or [] if item.get("state") == "failed"]
    return counts, problems


def _not_run(name: str) -> dict:
    return {"cluster": name, "state": "not run", "nodes_eligible": None, "nodes_ready": None, "images": [],
            "cached_everywhere": None, "problems": [], "quota": "not checked", "error": None}


def _lines(rows: list[dict]) -> list[str]:
    def nodes(row):
        return "-" if row["nodes_eligible"] is None else f"{row['nodes_ready']}/{row['nodes_eligible']}"

    def images(row):
        if row["cached_everywhere"] is None:
            return "-"
        return f"{len(row['images'])} {'cached everywhere' if row['cached_everywhere'] else 'NOT cached everywhere'}"

    table = [("CLUSTER", "STATE", "READY/ELIGIBLE", "IMAGES", "QUOTA")]
    table += [(r["cluster"], r["state"], nodes(r), images(r), r["quota"]) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(t[:4], widths)) + "  " + t[4] for t in table]
    for row in rows:
        if row["error"]:
            lines.append(f"{row['cluster']}: {row['error']}")
        for p in row["problems"]:
            what = f"image {p['image']}" if p["image"] else (f"pod {p['pod']}" if p["pod"] else "DaemonSet controller")
            where = f" on node {p['node']}" if p["node"] else ""
            lines.append(f"{row['cluster']}: {what}{where}: {p['reason']}" + (f": {p['message']}" if p["message"] else ""))
    return [line.rstrip() for line in lines]


def clusters_summary(entries, action="deploy", clusters=None, secrets=None):
    """One summary over all clusters of a play; see clusters_summary.yml."""
    if not isinstance(entries, (list, tuple)):
        raise AnsibleFilterError(f"clusters_summary expects a list of per-cluster mappings, got {type(entries).__name__}")
    if action not in DONE_STATES:
        raise AnsibleFilterError(f"clusters_summary: action must be one of {', '.join(DONE_STATES)}, got {action!r}")
    masked = sorted({str(s) for s in secrets or () if s not in (None, "")}, key=len, reverse=True)
    rows = [_cluster(e, action, masked) for e in entries]
    seen = {r["cluster"] for r in rows}
    rows += [_not_run(str(name)) for name in clusters or () if str(name) not in seen]
    rows.sort(key=lambda r: r["cluster"])
    return {
        "clusters": rows,
        "failed": [r["cluster"] for r in rows if r["state"] == "failed"],
        "not_converged": [r["cluster"] for r in rows if r["state"] == "not converged"],
        "not_run": [r["cluster"] for r in rows if r["state"] == "not run"],
        "ok": all(r["state"] not in ("failed", "not converged", "not run") for r in rows),
        "lines": _lines(rows),
    }


class FilterModule:
    """kip.image_puller multi-cluster filters."""

    def filters(self):
        return {"clusters_summary": clusters_summary}
