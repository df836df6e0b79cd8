# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters that check the image_puller role variables and write the upstream ConfigMap data.

Documented in the sidecar YAML files beside this one.
"""

from __future__ import annotations

import os

import yaml

from ansible.errors import AnsibleFilterError

# The module_utils are imported where they are used: Ansible loads every filter file of the
# collection, compiling it from source, for each collection filter a task names.


def _load_file(path):
    """A YAML or JSON file on the controller (image_puller_config); YAML reads JSON too."""
    with open(os.path.expanduser(path), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def image_puller_settings(value, reserved=None, require_images=True, report=False, given=None, known=None, options=None):
    """A mapping of image_puller_* variables -> checked, normalised settings (prefix dropped).

    With report=True nothing is raised: the result is {"settings": ..., "errors": [...]}, so a
    task can fail with a clean message listing the problems. ``options`` (the role's argument
    specification options) gives the defaults that tell an explicit variable from an unset one.
    """
    from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.settings import (  # pylint: disable=import-outside-toplevel
        INIT_CONTAINER,
        SettingsError,
        normalise,
    )

    if not isinstance(value, dict):
        raise AnsibleFilterError(f"image_puller_settings expects a mapping of image_puller_* variables, got {type(value).__name__}")
    defaults = {name: (spec or {}).get("default") for name, spec in (options or {}).items()}
    try:
        # YAML reads JSON as well, so the upstream JSON strings and YAML text both work.
        settings = normalise(dict(value), load_text=yaml.safe_load, reserved=tuple(reserved or (INIT_CONTAINER,)),
                             require_images=bool(require_images), given=list(given or ()),
                             known=None if known is None else list(known), defaults=defaults, load_file=_load_file)
    except SettingsError as exc:
        if report:
            return {"settings": {}, "errors": exc.errors}
        raise AnsibleFilterError(str(exc)) from exc
    return {"settings": settings, "errors": []} if report else settings


def upstream_config(value):
    """Normalised settings (from image_puller_settings) -> the upstream ConfigMap data."""
    from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.upstream import (  # pylint: disable=import-outside-toplevel
        configmap_data,
    )

    try:
        return configmap_data(value)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"upstream_config expects the output of kip.image_puller.image_puller_settings: {exc}") from exc


def manifests(value):
    """The role's rendered manifests (multi-document YAML text) -> the list of objects, empty documents left out.

    The same objects as ansible.builtin.from_yaml_all | select | list, as plain data: ansible-core 2.19 tags each value
    that filter returns with where it came from, some 7,000 values at 50 images, which the render task and the handover
    of its fact to the module's task then carried (0.3 s of each deploy).
    """
    if not isinstance(value, str):
        raise AnsibleFilterError(f"manifests expects the rendered YAML text, got {type(value).__name__}")
    # a plain str: libyaml refuses subclasses such as the tagged strings of ansible-core 2.19
    text = str.__str__(value)
    try:
        # libyaml's parser when PyYAML has it; the same YAML 1.1 safe loading either way
        return [document for document in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) if document]
    except yaml.YAMLError as exc:
        # where and what, never the text around it: the pull Secrets' data goes through this filter too
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise AnsibleFilterError(f"the rendered manifests are not valid YAML{where}: {getattr(exc, 'problem', None) or type(exc).__name__}") from None


class FilterModule:
    """kip.image_puller settings filters."""

    def filters(self):
        return {
            "image_puller_settings": image_puller_settings,
            "manifests": manifests,
            "upstream_config": upstream_config,
        }
