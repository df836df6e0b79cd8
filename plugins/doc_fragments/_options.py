# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The documentation the modules of kip.image_puller share: the connection, the DaemonSet definition, the time limit.

Private to the collection (the leading underscore): other collections should not extend it, as it may change
without notice.
"""
from __future__ import annotations


class ModuleDocFragment:
    # The connection: with kubernetes.core.k8s_auth_options, one action group for every module of the collection.
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
notes:
  - Connection options and their C(K8S_AUTH_*) environment variables are those of M(kubernetes.core.k8s).
"""

    DEFINITION = r"""
options:
  definition:
    description:
      - The image puller DaemonSet (C(apps/v1)), as a dictionary, for instance rendered from a template with
        P(ansible.builtin.template#lookup); M(kip.image_puller.image_puller_daemonset) and
        M(kip.image_puller.image_puller_quota) take the same definition.
      - C(status) and server-written metadata (C(resourceVersion), C(uid), C(managedFields), ...) are ignored.
    type: dict
    required: true
  namespace:
    description:
      - The namespace of the DaemonSet, when O(definition) has no C(metadata.namespace).
      - When both are set they must be equal.
    type: str
"""

    # One existing DaemonSet, by name (the modules that read or label around it).
    DAEMONSET = r"""
options:
  name:
    description: The name of the image puller DaemonSet.
    type: str
    required: true
  namespace:
    description: The namespace of the DaemonSet.
    type: str
    required: true
"""

    WAIT_TIMEOUT = r"""
options:
  wait_timeout:
    description:
      - How many seconds the module may take in all.
      - Within this time, refused or reset connections, dropped watches, C(410 Gone), C(429) and C(5xx) answers (an API
        server restarting or overloaded) are retried with back-off. If the API server is still unreachable when the time
        is up, the module fails saying since when it could not be reached.
    type: int
    default: 300
"""
