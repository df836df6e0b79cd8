# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pull_secrets filter; documented in pull_secrets.yml beside this file."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# The module_utils are imported where they are used: Ansible loads every filter file of the
# collection, compiling it from source, for each collection filter a task names.


def pull_secrets(value, daemonset_name):
    """image_puller_registry_credentials -> [{name, registry, dockerconfigjson}], one per registry."""
    from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.pull_secrets import (  # pylint: disable=import-outside-toplevel
        PullSecretError,
        pull_secrets as build,
    )

    if not isinstance(daemonset_name, str) or not daemonset_name:
        raise AnsibleFilterError("pull_secrets needs the DaemonSet's name, which the Secrets' names start with")
    try:
        return build(value, daemonset_name)
    except PullSecretError as exc:
        # the messages name entries and keys, never a value
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """kip.image_puller pull Secret filters."""

    def filters(self):
        return {"pull_secrets": pull_secrets}
