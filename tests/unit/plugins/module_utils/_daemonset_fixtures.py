# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Loads fixtures/daemonset_objects.yaml: a fresh deep copy per call, so tests may edit what they get."""

from __future__ import annotations

import copy
import functools
import pathlib

import yaml

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "daemonset_objects.yaml"


@functools.lru_cache(maxsize=1)
def _objects() -> dict:
    return yaml.safe_load(FIXTURES.read_text(encoding="utf-8"))


def obj(name: str, **changes) -> dict:
    """A copy of a fixture object; changes are dotted paths, e.g. {"status.numberAvailable": 3}."""
    value = copy.deepcopy(_objects()[name])
    for path, new in changes.items():
        set_path(value, path, new)
    return value


def set_path(value: dict, path: str, new) -> None:
    """Sets (or with new=DELETE removes) a dotted path; integer parts index lists."""
    *parents, last = path.split(".")
    for part in parents:
        value = value[int(part)] if part.isdigit() else value.setdefault(part, {})
    if new is DELETE:
        if last.isdigit():
            del value[int(last)]
        else:
            value.pop(last, None)
    elif last.isdigit():
        value[int(last)] = new
    else:
        value[last] = new


DELETE = object()
