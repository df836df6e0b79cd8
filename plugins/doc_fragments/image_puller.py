# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every module of kip.image_puller shares in its documentation.

Internal to the collection: other collections should not extend it, as it may change without notice.
"""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  platform:
    platforms: all
  action_group:
    description: Use C(group/kip.image_puller.image_puller) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - kip.image_puller.image_puller
requirements:
  - kubernetes >= 24.2.0 (Python library)
"""
