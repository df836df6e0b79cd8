# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action of kip.image_puller.image_puller_upstream: the module, run as ansible-core runs any (plugin_utils.module_task)."""

from __future__ import annotations

from ansible_collections.kip.image_puller.plugins.plugin_utils.module_task import ModuleTask


class ActionModule(ModuleTask):
    """kip.image_puller.image_puller_upstream in a worker that does not collect the garbage it inherited."""
