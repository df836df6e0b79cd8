# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("check_argument_specs", ROOT / "tests" / "tools" / "check_argument_specs.py")
checker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checker)


def role(tmp_path, defaults, options):
    (tmp_path / "defaults").mkdir()
    (tmp_path / "meta").mkdir()
    (tmp_path / "defaults" / "main.yml").write_text(yaml.safe_dump(defaults))
    (tmp_path / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {"main": {"options": options}}}))
    return tmp_path


def opt(**spec):
    return {"description": "d", "type": "str", **spec}


def test_the_shipped_role_agrees():
    assert checker.problems(ROOT / "roles" / "image_puller") == []


@pytest.mark.parametrize(
    ("defaults", "options", "problem"),
    [
        pytest.param({"a": 1}, {}, "a: in defaults/main.yml but not in meta/argument_specs.yml", id="a default missing from the specs"),
        pytest.param({}, {"a": opt(default="x")}, "missing from defaults/main.yml", id="a spec default missing from defaults"),
        pytest.param({"a": "y"}, {"a": opt(default="x")}, "defaults/main.yml has 'y', meta/argument_specs.yml has 'x'",
                     id="different default values"),
        pytest.param({"a": 1}, {"a": opt(type="int", default="1")}, "has 1, meta/argument_specs.yml has '1'",
                     id="the same value with a different type"),
        pytest.param({"a": "x"}, {"a": opt()}, "gives no default", id="a default for an option the specs leave unset"),
        pytest.param({}, {"a": {"type": "str"}}, "no description", id="an option without a description"),
        pytest.param({"a": "z"}, {"a": opt(default="z", choices=["x", "y"])}, "not one of its choices", id="a default outside the choices"),
    ],
)
def test_differences_are_found(tmp_path, defaults, options, problem):
    assert any(problem in found for found in checker.problems(role(tmp_path, defaults, options)))


def test_main_fails_on_a_difference(tmp_path, capsys):
    assert checker.main([str(role(tmp_path, {"a": 1}, {}))]) == 1
    assert "1 difference(s)" in capsys.readouterr().err
