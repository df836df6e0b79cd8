# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action of every module of the collection: ansible-core's own, in a worker that leaves its inheritance alone.

ansible-playbook runs each task in a worker process forked from itself, so the
worker starts with every object of the controller: several hundred thousand.
Building a module's AnsiballZ payload (parsing each module_utils file to find
its imports) and reading its result allocate enough to start Python's full
garbage collections, and each of those walks every inherited object again:
about 0.1 s each at 1,001 nodes x 50 images, two or three per deploy task. The
worker ends with its task, so it freezes (gc.freeze) what it inherited first;
what the task itself allocates is still collected. Run outside a forked worker
(no parent process) nothing is frozen.
"""

from __future__ import annotations

import gc
import multiprocessing

from ansible.plugins.action.normal import ActionModule as NormalAction


class ModuleTask(NormalAction):
    """ansible.builtin.normal (check mode, async, module_defaults as for any module), in a frozen worker."""

    def run(self, tmp=None, task_vars=None):
        if multiprocessing.parent_process() is not None:
            gc.freeze()
        return super().run(tmp, task_vars)
