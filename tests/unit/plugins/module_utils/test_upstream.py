# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The upstream table, the role defaults and the mapping document tell the same story."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import upstream

ROOT = Path(__file__).resolve().parents[4]
DEFAULTS = yaml.safe_load((ROOT / "roles" / "image_puller" / "defaults" / "main.yml").read_text(encoding="utf-8"))
MAPPING = (ROOT / "README.md").read_text(encoding="utf-8")
# Where the role's default differs from upstream's on purpose (the reasons are in docs/upstream-mapping.md).
DELIBERATE = {upstream.IMAGES, upstream.KIP_IMAGE}


@pytest.mark.parametrize("key", list(upstream.KEYS))
def test_every_upstream_key_has_a_role_default_and_a_row_in_the_mapping(key):
    variable, _default, _helm = upstream.KEYS[key]
    assert variable in DEFAULTS
    assert f"| `{key}` |" in MAPPING and f"`{variable}`" in MAPPING


@pytest.mark.parametrize("key", [k for k in upstream.KEYS if k not in DELIBERATE])
def test_role_defaults_are_upstream_defaults(key):
    variable, default, _helm = upstream.KEYS[key]
    value = DEFAULTS[variable]
    if key == upstream.IMAGE_PULL_SECRETS:
        assert "".join(f"{name};" for name in value) == default  # upstream's `a;b;` form
    elif isinstance(value, (dict, list)):
        assert upstream._json(value) == default  # pylint: disable=protected-access
    else:
        assert str(value) == default
