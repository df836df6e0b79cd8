# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""plugin_utils.module_task: ansible-core's module action, in a worker that freezes what it inherited."""

from __future__ import annotations

import gc
import importlib
from pathlib import Path

import pytest

from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.kip.image_puller.plugins.plugin_utils import module_task

MODULES = ["image_puller_daemonset", "image_puller_quota", "image_puller_info", "image_puller_node_labels", "image_puller_upstream"]


@pytest.fixture(name="normal_run")
def fixture_normal_run(monkeypatch):
    """Stands in for ansible-core's module action: records the arguments and whether objects were frozen by then."""
    calls = []

    def run(_self, tmp=None, task_vars=None):
        calls.append((tmp, task_vars, gc.get_freeze_count() > 0))
        return {"changed": False}

    monkeypatch.setattr(NormalAction, "run", run)
    yield calls
    gc.unfreeze()


@pytest.mark.parametrize("parent, frozen", [
    pytest.param(object(), True, id="a worker forked from ansible-playbook freezes before the module runs"),
    pytest.param(None, False, id="a process without a parent (not a worker) freezes nothing"),
])
def test_freezes_only_in_a_worker(monkeypatch, normal_run, parent, frozen):
    gc.unfreeze()
    monkeypatch.setattr(module_task.multiprocessing, "parent_process", lambda: parent)
    task = module_task.ModuleTask.__new__(module_task.ModuleTask)

    assert task.run(None, {"v": 1}) == {"changed": False}
    assert normal_run == [(None, {"v": 1}, frozen)]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_has_the_action(name):
    action = importlib.import_module(f"ansible_collections.kip.image_puller.plugins.action.{name}")
    assert issubclass(action.ActionModule, module_task.ModuleTask)
    assert action.ActionModule._supports_check_mode and action.ActionModule._supports_async


def test_every_module_is_listed():
    modules = Path(module_task.__file__).parents[1] / "modules"
    assert sorted(p.stem for p in modules.glob("*.py")) == sorted(MODULES)
