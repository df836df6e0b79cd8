# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/awx-project/survey_deploy.json, the survey AWX imports, against the role's argument spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.settings import normalise

ROOT = Path(__file__).resolve().parents[3]
SURVEY = json.loads((ROOT / "docs" / "awx-project" / "survey_deploy.json").read_text(encoding="utf-8"))
OPTIONS = yaml.safe_load((ROOT / "roles" / "image_puller" / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]
DEFAULTS = yaml.safe_load((ROOT / "roles" / "image_puller" / "defaults" / "main.yml").read_text(encoding="utf-8"))
CONNECTION = {"image_puller_host", "image_puller_api_key", "image_puller_validate_certs"}
# AWX question types (awx/main/models/mixins.py) and the argument spec types each may feed.
FITS = {"text": {"str", "raw", "path"}, "textarea": {"raw", "str"}, "password": {"str"}, "integer": {"int", "raw"},
        "float": {"float", "raw"}, "multiplechoice": {"str", "bool", "raw"}, "multiselect": {"list"}}
QUESTIONS = [pytest.param(q, id=q["variable"]) for q in SURVEY["spec"]]


def accepted(variable, value) -> list[str]:
    spec = {variable: {key: OPTIONS[variable][key] for key in ("type", "choices") if key in OPTIONS[variable]}}
    return ArgumentSpecValidator(spec).validate({variable: value}).error_messages


def answers(**changes) -> dict:
    out = {q["variable"]: q["default"] for q in SURVEY["spec"]}
    out["image_puller_images"] = "web=registry.example.com/web:1.0;\ntools=registry.example.com/tools:2.1;\n"
    out.update(changes)
    return out


def test_the_survey_has_the_fields_awx_imports():
    assert set(SURVEY) == {"name", "description", "spec"}
    for question in SURVEY["spec"]:
        assert {"question_name", "required", "type", "variable", "default"} <= set(question), question["variable"]
    assert len({q["variable"] for q in SURVEY["spec"]}) == len(SURVEY["spec"])


@pytest.mark.parametrize("question", QUESTIONS)
def test_each_question_sets_a_role_variable_of_a_fitting_type(question):
    option = OPTIONS[question["variable"]]
    assert option["type"] in FITS[question["type"]]
    assert (question["type"] == "password") == bool(option.get("no_log")), "secrets are asked as password, and only they"


@pytest.mark.parametrize("question", QUESTIONS)
def test_each_default_and_choice_passes_the_argument_spec(question):
    values = [question["default"]] + (question["choices"] if question["type"] == "multiplechoice" else [])
    for value in values:
        if value == "" and not question["required"]:
            assert question["variable"] in CONNECTION | {"image_puller_image_pull_secrets"}
            continue
        assert accepted(question["variable"], value) == [], value


@pytest.mark.parametrize("question", QUESTIONS)
def test_required_defaults_agree_with_the_role_defaults(question):
    if question["required"] and question["variable"] in DEFAULTS and question["variable"] != "image_puller_images":
        assert str(question["default"]) == str(DEFAULTS[question["variable"]]).lower()


def test_the_answers_as_awx_gives_them_pass_the_role_checks():
    raw = {**DEFAULTS, **answers()}
    given = [name for name in raw if name not in CONNECTION or raw[name] != ""]
    settings = normalise(raw, load_text=yaml.safe_load, known=OPTIONS, given=given)
    assert [item["name"] for item in settings["images"]] == ["web", "tools"]
    assert settings["network_policy"] is True and settings["image_pull_secrets"] == []
