# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.kip.image_puller.plugins.filter.clusters import clusters_summary

IMAGES = [{"container": "app", "image": "registry.example/app:1"}, {"container": "bad", "image": "registry.example/bad:pull-fails"}]
PULL_PROBLEM = {"node": "kwok-node-1", "pod": "p-1", "container": "bad", "init_container": False,
                "image": "registry.example/bad:pull-fails", "reason": "ImagePullBackOff", "message": "Back-off pulling image"}


def rollout(desired=2, ready=2, updated=2, problems=(), **extra):
    return {"summary": {"desired": desired, "ready": ready, "updated": updated, "images": IMAGES, "nodes": []},
            "problems": list(problems), "result": {"kind": "DaemonSet"}, **extra}


def row(summary, name):
    return next(r for r in summary["clusters"] if r["cluster"] == name)


@pytest.mark.parametrize(
    ("entry", "state", "ready", "eligible", "cached"),
    [
        pytest.param({"rollout": rollout()}, "converged", 2, 2, True, id="every eligible node ready and updated"),
        pytest.param({"rollout": rollout(ready=1)}, "not converged", 1, 2, False, id="a node not ready"),
        pytest.param({"rollout": rollout(updated=1)}, "not converged", 2, 2, False, id="a node on the previous template"),
        pytest.param({"rollout": rollout(desired=0, ready=0, updated=0)}, "not converged", 0, 0, False,
                     id="no eligible node caches nothing"),
        pytest.param({"rollout": rollout(ready=1, problems=[PULL_PROBLEM]), "error": "Apply the DaemonSet: timed out\nimage ..."},
                     "failed", 1, 2, False, id="a pull failure that failed the run"),
        pytest.param({"error": "Connection refused"}, "failed", None, None, None, id="unreachable before any rollout"),
        pytest.param({"rollout": {"skipped": True, "summary": {"desired": 9}}}, "not rolled out", None, None, None,
                     id="a skipped rollout counts as none"),
        pytest.param({}, "not rolled out", None, None, None, id="nothing reported"),
    ],
)
def test_cluster_state(entry, state, ready, eligible, cached):
    got = row(clusters_summary([{"cluster": "c1", **entry}]), "c1")
    assert (got["state"], got["nodes_ready"], got["nodes_eligible"], got["cached_everywhere"]) == (state, ready, eligible, cached)


@pytest.mark.parametrize(
    ("action", "state"),
    [("deploy", "not rolled out"), ("remove", "removed"), ("status", "not deployed")],
)
def test_state_without_rollout_follows_the_action(action, state):
    assert row(clusters_summary([{"cluster": "c1"}], action=action), "c1")["state"] == state


@pytest.mark.parametrize(
    ("quota", "verdict"),
    [
        pytest.param(None, "not checked", id="no check"),
        pytest.param({"skipped": True}, "not checked", id="skipped"),
        pytest.param({"fits": True, "unchanged": False}, "fits", id="fits"),
        pytest.param({"unchanged": True, "fits": True}, "fits (pod template unchanged, not checked again)", id="unchanged"),
        pytest.param({"fits": False, "shortfalls": ["short by 500Mi", "short by 1 pod"]},
                     "does not fit: short by 500Mi; short by 1 pod", id="shortfalls"),
        pytest.param({"failed": True, "msg": "cannot read quotas"}, "check failed: cannot read quotas", id="check failed"),
    ],
)
def test_quota_verdict(quota, verdict):
    assert row(clusters_summary([{"cluster": "c1", "quota": quota}]), "c1")["quota"] == verdict


def test_three_clusters_one_summary_names_each_failure_and_why():
    summary = clusters_summary([
        {"cluster": "good", "rollout": rollout(), "quota": {"fits": True}},
        {"cluster": "pull", "rollout": rollout(ready=1, problems=[PULL_PROBLEM]), "quota": {"fits": True},
         "error": "Apply the DaemonSet and wait: the rollout did not finish within 15s:\nimage ... (repeated)"},
        {"cluster": "gone", "error": ["Read the cluster: Connection refused"]},
    ])
    assert summary["failed"] == ["gone", "pull"]
    assert not summary["ok"]
    assert [r["cluster"] for r in summary["clusters"]] == ["gone", "good", "pull"]
    assert row(summary, "pull")["problems"] == [{"image": "registry.example/bad:pull-fails", "node": "kwok-node-1",
                                                 "reason": "ImagePullBackOff", "message": "Back-off pulling image",
                                                 "container": "bad", "pod": "p-1"}]
    # the rollout's own list of problems is not repeated in the error
    assert row(summary, "pull")["error"] == "Apply the DaemonSet and wait: the rollout did not finish within 15s:"
    text = "\n".join(summary["lines"])
    assert "gone: Read the cluster: Connection refused" in text
    assert "pull: image registry.example/bad:pull-fails on node kwok-node-1: ImagePullBackOff: Back-off pulling image" in text
    header, *table = summary["lines"][:4]
    assert header.split() == ["CLUSTER", "STATE", "READY/ELIGIBLE", "IMAGES", "QUOTA"]
    assert table[1].split()[:4] == ["good", "converged", "2/2", "2"]


def test_clusters_without_an_entry_are_not_run():
    summary = clusters_summary([{"cluster": "a", "rollout": rollout()}], clusters=["a", "b"])
    assert (summary["not_run"], summary["ok"], row(summary, "b")["state"]) == (["b"], False, "not run")


def test_secrets_are_masked_everywhere():
    token = "sha256~s3cr3t"
    summary = clusters_summary(
        [{"cluster": "c1", "error": f"401 for Bearer {token}", "quota": {"failed": True, "msg": f"token {token} refused"},
          "rollout": rollout(problems=[{**PULL_PROBLEM, "message": f"auth {token}"}])}],
        secrets=[token, "", None])
    assert token not in repr(summary)
    assert "********" in row(summary, "c1")["error"]


@pytest.mark.parametrize(
    ("entries", "kwargs", "match"),
    [
        pytest.param({"cluster": "a"}, {}, "a list of per-cluster mappings", id="not a list"),
        pytest.param([{"rollout": {}}], {}, "at least 'cluster'", id="no cluster name"),
        pytest.param(["a"], {}, "at least 'cluster'", id="not a mapping"),
        pytest.param([], {"action": "install"}, "action must be one of", id="unknown action"),
    ],
)
def test_bad_input_is_refused(entries, kwargs, match):
    with pytest.raises(AnsibleFilterError, match=match):
        clusters_summary(entries, **kwargs)


def info_summary(eligible=2, ready=2, updated=2, lacking=(), exists=True):
    images = [i["image"] for i in IMAGES]
    lacking_images = {item["image"] for item in lacking}
    return {"summary": {"exists": exists, "nodes": 3, "eligible": eligible, "ready": ready, "updated": updated,
                        "images": images, "cached_everywhere": [i for i in images if i not in lacking_images],
                        "complete": exists and not lacking, "fully_cached_nodes": [], "lacking": list(lacking)}}


WAITING = {"node": "kwok-node-0", "container": "bad", "image": "registry.example/bad:pull-fails", "state": "waiting",
           "reason": None, "message": None}
FAILED = {**PULL_PROBLEM, "state": "failed"}


@pytest.mark.parametrize(
    ("info", "state", "ready", "eligible", "problems"),
    [
        pytest.param(info_summary(), "converged", 2, 2, [], id="every image on every eligible node"),
        pytest.param(info_summary(ready=1, lacking=[WAITING]), "not converged", 1, 2, [], id="an image still waiting"),
        pytest.param(info_summary(ready=1, lacking=[FAILED]), "not converged", 1, 2, ["ImagePullBackOff"],
                     id="a failed pull is a problem"),
        pytest.param(info_summary(exists=False), "not deployed", None, None, [], id="no DaemonSet"),
        pytest.param({"skipped": True}, "not deployed", None, None, [], id="skipped"),
    ],
)
def test_the_info_summary_feeds_a_status(info, state, ready, eligible, problems):
    got = row(clusters_summary([{"cluster": "c", "info": info}], action="status"), "c")
    assert (got["state"], got["nodes_ready"], got["nodes_eligible"]) == (state, ready, eligible)
    assert [p["reason"] for p in got["problems"]] == problems


def test_a_rollout_wins_over_an_info_summary():
    got = row(clusters_summary([{"cluster": "c", "rollout": rollout(ready=1), "info": info_summary()}]), "c")
    assert (got["state"], got["nodes_ready"]) == ("not converged", 1)
