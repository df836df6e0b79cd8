# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters for the image list (upstream IMAGES); documented in the sidecar YAML files beside this one."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# The module_utils are imported where they are used: Ansible loads every filter file of the
# collection, compiling it from source, for each collection filter a task names.


def image_list(value, reserved=None, allow_empty=False, variable="image_puller_images"):
    """The upstream string or a list -> validated, ordered list of {name, image}."""
    from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.images import (  # pylint: disable=import-outside-toplevel
        ImageListError,
        parse_images,
    )

    try:
        return parse_images(value, variable=variable, reserved=tuple(reserved or ()), allow_empty=bool(allow_empty))
    except ImageListError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def upstream_images(value):
    """A list of {name, image} (or anything image_list accepts) -> `name=image;name=image;`."""
    from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.images import (  # pylint: disable=import-outside-toplevel
        to_upstream_string,
    )

    return to_upstream_string(image_list(value, allow_empty=True))


class FilterModule:
    """kip.image_puller image list filters."""

    def filters(self):
        return {
            "image_list": image_list,
            "upstream_images": upstream_images,
        }
