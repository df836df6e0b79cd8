# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""client.run_module: a module's main() from its run() to exit_json or fail_json, with a stand-in module."""

from __future__ import annotations

import gc

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import client
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError


class FakeModule:
    """Records how the module ended and whether the objects were frozen by then (gc.freeze)."""

    def __init__(self, **_kwargs):
        self.ended = None

    def exit_json(self, **result):
        self.ended = ("exit", result, gc.get_freeze_count() > 0)
        raise SystemExit(0)

    def fail_json(self, **result):
        self.ended = ("fail", result, gc.get_freeze_count() > 0)
        raise SystemExit(1)


def succeed(_module):
    return {"changed": True}


def fail(_module):
    raise ImagePullerError("the rollout did not finish", summary={"desired": 3})


def crash(_module):
    raise KeyError("a bug")


@pytest.fixture(name="made")
def fixture_made(monkeypatch):
    made = []

    def new_module(**kwargs):
        made.append(FakeModule(**kwargs))
        return made[-1]

    monkeypatch.setattr(client, "new_module", new_module)
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield made
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.parametrize(
    ("run", "code", "ended"),
    [
        pytest.param(succeed, 0, ("exit", {"changed": True}, True), id="a result: exit_json, after freezing"),
        pytest.param(fail, 1, ("fail", {"msg": "the rollout did not finish", "summary": {"desired": 3}}, True),
                     id="an ImagePullerError: fail_json with its message and partial result, after freezing"),
    ],
)
def test_the_module_ends_with_its_result_and_leaves_the_objects_to_the_process_end(made, run, code, ended):
    with pytest.raises(SystemExit) as exited:
        client.run_module({}, run)
    assert exited.value.code == code
    assert made[0].ended == ended
    assert gc.get_threshold()[0] == client.GC_YOUNG_THRESHOLD, "fewer collections while answers are parsed"


def test_a_bug_is_not_hidden_and_nothing_is_frozen(made):
    with pytest.raises(KeyError):
        client.run_module({}, crash)
    assert made[0].ended is None and gc.get_freeze_count() == 0
