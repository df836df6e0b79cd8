# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters for the image list (upstream IMAGES); documented in the sidecar YAML files beside this one."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.images import (
    ImageListError,
    parse_images,
    to_upstream_string,
)


def image_list(value, reserved=None, allow_empty=False, variable="image_puller_images"):
    """The upstream string or a list -> validated, ordered list of {name, image}."""
    try:
        return parse_images(value, variable=variable, reserved=tuple(reserved or ()), allow_empty=bool(allow_empty))
    except ImageListError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def upstream_images(value):
    """A list of {name, image} (or anything image_list accepts) -> `name=image;name=image;`."""
    return to_upstream_string(image_list(value, allow_empty=True))


class FilterModule:
    """kip.image_puller image list filters."""

    def filters(self):
        return {
            "image_list": image_list,
            "upstream_images": upstream_images,
        }
