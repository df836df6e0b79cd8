# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""image_puller_daemonset's summary_nodes: the result without the pods by node, and nothing else changed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import runner
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError

NODE = {"node": "n1", "pod": "p1", "phase": "Running", "ready": True, "updated": True}
SUMMARY = {"desired": 1, "ready": 1, "nodes": [NODE]}
EMPTY = {"desired": 1, "ready": 1, "nodes": []}


@pytest.mark.parametrize("result, expected", [
    ({"changed": True, "summary": SUMMARY, "problems": []}, {"changed": True, "summary": EMPTY, "problems": []}),
    ({"summary": EMPTY}, {"summary": EMPTY}),
    ({"summary": None}, {"summary": None}),
    ({"changed": False}, {"changed": False}),
    ({"summary": SUMMARY, "daemonsets": [{"name": "a", "summary": SUMMARY}, {"name": "b", "summary": None}]},
     {"summary": EMPTY, "daemonsets": [{"name": "a", "summary": EMPTY}, {"name": "b", "summary": None}]}),
], ids=["single", "already empty", "no summary", "absent", "per architecture"])
def test_without_nodes(result, expected):
    before = repr(result)
    assert runner.without_nodes(result) == expected
    assert repr(result) == before  # the caller's result is not changed in place


@pytest.mark.parametrize("summary_nodes, fails, nodes", [
    (True, False, [NODE]),
    (False, False, []),
    (True, True, [NODE]),
    (False, True, []),
])
def test_run_leaves_out_nodes_only_when_asked(monkeypatch, summary_nodes, fails, nodes):
    result = {"changed": True, "summary": SUMMARY, "summary_lines": ["1/1"]}

    def fake_run(module):
        if fails:
            raise ImagePullerError("timed out", **result)
        return result

    monkeypatch.setattr(runner, "_run", fake_run)
    module = SimpleNamespace(params={"summary_nodes": summary_nodes})
    if fails:
        with pytest.raises(ImagePullerError) as caught:
            runner.run(module)
        out = caught.value.result
        assert caught.value.msg == "timed out"
    else:
        out = runner.run(module)
    assert out["summary"]["nodes"] == nodes
    assert out["summary_lines"] == ["1/1"] and out["changed"] is True
