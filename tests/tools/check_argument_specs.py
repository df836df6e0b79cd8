#!/usr/bin/env python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fail when a role's defaults/main.yml and meta/argument_specs.yml disagree.

Rules, for every entry point's options:
- every key of defaults/main.yml is an option, with a description and a type;
- an option with a default is in defaults/main.yml with the same value;
- an option without a default is not in defaults/main.yml (it is optional and omitted when unset);
- every option has a description and a type.

Usage: check_argument_specs.py ROLE_DIR [ROLE_DIR ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def problems(role: Path) -> list[str]:
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text(encoding="utf-8")) or {}
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]
    options = specs["main"].get("options", {})
    found = []
    for key in defaults:
        if key not in options:
            found.append(f"{key}: in defaults/main.yml but not in meta/argument_specs.yml")
    for key, spec in options.items():
        if not spec.get("description"):
            found.append(f"{key}: no description in meta/argument_specs.yml")
        if not spec.get("type"):
            found.append(f"{key}: no type in meta/argument_specs.yml")
        if "default" in spec:
            if key not in defaults:
                found.append(f"{key}: default {spec['default']!r} in meta/argument_specs.yml but missing from defaults/main.yml")
            elif defaults[key] != spec["default"] or type(defaults[key]) is not type(spec["default"]):
                found.append(f"{key}: defaults/main.yml has {defaults[key]!r}, meta/argument_specs.yml has {spec['default']!r}")
            if spec.get("choices") and spec["default"] not in spec["choices"]:
                found.append(f"{key}: default {spec['default']!r} is not one of its choices {spec['choices']!r}")
        elif key in defaults:
            found.append(f"{key}: in defaults/main.yml ({defaults[key]!r}) but meta/argument_specs.yml gives no default")
    return found


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    failed = 0
    for role in map(Path, argv):
        for problem in problems(role):
            print(f"{role}: {problem}", file=sys.stderr)
            failed += 1
    if failed:
        print(f"{failed} difference(s) between defaults and argument specs", file=sys.stderr)
        return 1
    print(f"defaults and argument specs agree: {', '.join(argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
