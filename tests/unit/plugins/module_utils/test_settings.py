# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import settings as settings_module
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import upstream
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.settings import SettingsError, normalise, unknown_variables

ROLE = Path(__file__).resolve().parents[4] / "roles" / "image_puller"
ROLE_OPTIONS = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]

# The role's own defaults (what the role hands over when nothing is set), with an image list.
ROLE_DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
DEFAULTS = {**ROLE_DEFAULTS, "image_puller_images": "web=nginx:1.27;"}


def settings(**changes):
    # The filter plugin passes a YAML loader (YAML reads JSON too); do the same here.
    return normalise({**DEFAULTS, **{f"image_puller_{k}": v for k, v in changes.items()}}, load_text=yaml.safe_load)


def test_the_defaults_are_valid():
    out = settings()
    assert out["images"] == [{"name": "web", "image": "nginx:1.27"}]
    assert out["caching_cpu_request"] == ".05"
    assert out["node_selector"] == {} and out["tolerations"] == []


@pytest.mark.parametrize(
    ("changes", "key", "expected"),
    [
        pytest.param({"caching_interval_hours": "3"}, "caching_interval_hours", 3, id="an AWX string hour count becomes an int"),
        pytest.param({"caching_interval_hours": "3"}, "caching_interval_seconds", 10800, id="three hours are 10800 seconds of sleep"),
        pytest.param({"caching_interval_hours": 0.25}, "caching_interval_seconds", 900, id="a quarter of an hour is 900 seconds"),
        pytest.param({"caching_interval_hours": "0.01"}, "caching_interval_hours", 0.01, id="an AWX string fraction stays a fraction"),
        pytest.param({"caching_interval_hours": "0.01"}, "caching_interval_seconds", 36, id="a hundredth of an hour is 36 seconds"),
        pytest.param({"caching_interval_hours": 2.0}, "caching_interval_hours", 2, id="a whole float is written as a whole number"),
        pytest.param({"refresh": "true"}, "refresh", True, id="a survey's true asks for a refresh"),
        pytest.param({"wait_timeout": " 900 "}, "wait_timeout", 900, id="an AWX string timeout becomes an int"),
        pytest.param({"wait": "false"}, "wait", False, id="the string false becomes false"),
        pytest.param({"quota_check": "yes"}, "quota_check", True, id="the string yes becomes true"),
        pytest.param({"quota_check": "y"}, "quota_check", True, id="the string y becomes true as in an argument spec"),
        pytest.param({"wait": "N"}, "wait", False, id="the string N becomes false as in an argument spec"),
        pytest.param({"network_policy": 0}, "network_policy", False, id="the number 0 becomes false"),
        pytest.param({"validate_certs": ""}, "validate_certs", None, id="a blank validate_certs is unset so K8S_AUTH_VERIFY_SSL applies"),
        pytest.param({"validate_certs": None}, "validate_certs", None, id="an unset validate_certs stays unset"),
        pytest.param({"validate_certs": "false"}, "validate_certs", False, id="the string false for validate_certs becomes false"),
        pytest.param({"wait_timeout": 600.0}, "wait_timeout", 600, id="a whole float timeout becomes an int"),
        pytest.param({"wait_timeout": "600.0"}, "wait_timeout", 600, id="the string 600.0 becomes an int as in an argument spec"),
        pytest.param({"caching_ephemeral_storage_limit": "1Gi"}, "caching_ephemeral_storage_limit", "1Gi",
                     id="an ephemeral-storage limit is kept as given"),
        pytest.param({"caching_cpu_limit": 0.2}, "caching_cpu_limit", "0.2", id="an unquoted YAML cpu number becomes a string"),
        pytest.param({"node_selector": '{"kubernetes.io/os": "linux"}'}, "node_selector", {"kubernetes.io/os": "linux"},
                     id="the upstream JSON node selector is parsed"),
        pytest.param({"node_selector": "disk: ssd"}, "node_selector", {"disk": "ssd"}, id="a YAML string node selector is parsed"),
        pytest.param({"node_selector": "{}"}, "node_selector", {}, id="the upstream default {} is an empty selector"),
        pytest.param({"tolerations": '[{"key":"dedicated","operator":"Equal","value":"gpu","effect":"NoSchedule"}]'},
                     "tolerations", [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
                     id="upstream JSON tolerations are parsed"),
        pytest.param({"tolerations": [{"operator": "Exists"}]}, "tolerations", [{"operator": "Exists"}],
                     id="a toleration of every taint is allowed"),
        pytest.param({"affinity": '{"nodeAffinity": {}}'}, "affinity", {"nodeAffinity": {}}, id="upstream JSON affinity is parsed"),
        pytest.param({"image_pull_secrets": "quay-pull; ghcr-pull;"}, "image_pull_secrets", ["quay-pull", "ghcr-pull"],
                     id="the upstream secret list string is split"),
        pytest.param({"image_pull_secrets": [{"name": "a"}, "b", "a"]}, "image_pull_secrets", ["a", "b"],
                     id="secret references and names mix and repeats are dropped"),
        pytest.param({"daemonset_annotations": '{"owner":"platform"}'}, "daemonset_annotations", {"owner": "platform"},
                     id="upstream JSON DaemonSet annotations are parsed"),
        pytest.param({"daemonset_annotations": {"example.com/note": "any text, spaces too"}}, "daemonset_annotations",
                     {"example.com/note": "any text, spaces too"}, id="annotation values are free text"),
        pytest.param({"labels": {"example.com/team": "platform_a-1"}}, "labels", {"example.com/team": "platform_a-1"},
                     id="a prefixed label key and a value with '_' and '-' are accepted"),
        pytest.param({"priority_class_name": "image-puller-low"}, "priority_class_name", "image-puller-low",
                     id="a priority class name is kept"),
    ],
)
def test_normalise(changes, key, expected):
    assert settings(**changes)[key] == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"caching_interval_hours": "one"}, "image_puller_caching_interval_hours: expected a number of hours",
                     id="a word for the hour count is an error"),
        pytest.param({"caching_interval_hours": 0}, "must be at least 10 seconds", id="a zero hour interval is an error"),
        pytest.param({"caching_interval_hours": "-1"}, "must be at least 10 seconds", id="a negative interval is an error"),
        pytest.param({"caching_interval_hours": "inf"}, "expected a number of hours", id="an infinite interval is an error"),
        pytest.param({"caching_interval_hours": 0.002}, "must be at least 10 seconds", id="7 seconds is below the minimum"),
        pytest.param({"caching_interval_hours": True}, "expected a number of hours", id="a boolean interval is an error"),
        pytest.param({"caching_memory_limit": "20MB"}, "image_puller_caching_memory_limit: '20MB' is not a Kubernetes quantity",
                     id="a memory limit in MB is an error"),
        pytest.param({"caching_cpu_request": "0"}, "must be greater than zero", id="a zero cpu request is an error"),
        pytest.param({"caching_memory_request": "30Mi"},
                     'image_puller_caching_memory_request: "30Mi" is more than image_puller_caching_memory_limit "20Mi"',
                     id="a request above its limit is an error"),
        pytest.param({"caching_cpu_request": "300m"}, "a request cannot exceed its limit", id="a cpu request above the limit is an error"),
        pytest.param({"node_selector": "{bad json"}, "image_puller_node_selector: is a string but not valid JSON or YAML",
                     id="a broken node selector string is an error"),
        pytest.param({"node_selector": {"disk": True}}, "keys and values must be strings", id="a boolean selector value is an error"),
        pytest.param({"node_selector": "[]"}, "expected a mapping", id="a list node selector is an error"),
        pytest.param({"tolerations": "{}"}, "image_puller_tolerations: expected a list", id="a mapping of tolerations is an error"),
        pytest.param({"tolerations": [{"key": "a", "operator": "In"}]}, "operator must be Exists or Equal",
                     id="an unknown toleration operator is an error"),
        pytest.param({"tolerations": [{"key": "a", "effect": "NoScheduled"}]}, "effect must be one of",
                     id="a misspelt toleration effect is an error"),
        pytest.param({"tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]}, "operator Exists takes no value",
                     id="a value with operator Exists is an error"),
        pytest.param({"tolerations": [{"keys": "a"}]}, "unknown key(s) keys", id="an unknown toleration key is an error"),
        pytest.param({"affinity": {"nodeAfinity": {}}}, "unknown key(s) nodeAfinity", id="a misspelt affinity key is an error"),
        pytest.param({"image_pull_secrets": "Quay_Pull"}, '"Quay_Pull" is not a Secret name', id="an invalid secret name is an error"),
        pytest.param({"namespace": "Image-Puller"}, "image_puller_namespace: must be a DNS-1123 label", id="an uppercase namespace is an error"),
        pytest.param({"daemonset_name": "a" * 64}, "at most 63 characters", id="a 64 character DaemonSet name is an error"),
        pytest.param({"puller_image": "quay.io/Eclipse/kip"}, "image_puller_puller_image: invalid image reference",
                     id="an invalid puller image is an error"),
        pytest.param({"labels": {"app.kubernetes.io/name": "x"}}, "is set by the role", id="overriding a selector label is an error"),
        pytest.param({"labels": {"bad key!": "v"}}, "image_puller_labels: key 'bad key!': the name must be",
                     id="a label key with a space is an error before anything is applied"),
        pytest.param({"labels": {"Example.com/team": "x"}}, "the prefix before '/' must be a DNS-1123 subdomain",
                     id="an uppercase label key prefix is an error"),
        pytest.param({"labels": {"a/b/c": "x"}}, "has more than one '/'", id="a label key with two slashes is an error"),
        pytest.param({"labels": {"team": "platform team"}}, "value 'platform team' of 'team' must be empty or at most 63",
                     id="a label value with a space is an error"),
        pytest.param({"node_selector": {"disk": "x" * 64}}, "image_puller_node_selector: value", id="a 64 character selector value is an error"),
        pytest.param({"daemonset_annotations": {"owner/x/y": "a"}}, "image_puller_daemonset_annotations: key 'owner/x/y'",
                     id="an invalid annotation key is an error"),
        pytest.param({"tolerations": [{"key": 1, "operator": "Exists"}]}, "toleration 1: key and value must be strings",
                     id="a numeric toleration key is an error"),
        pytest.param({"tolerations": [{"key": "gpu", "value": "a b"}]}, "toleration 1: value 'a b' of 'gpu'",
                     id="a toleration value with a space is an error"),
        pytest.param({"wait": "maybe"}, "image_puller_wait: expected true or false", id="a word that is not a boolean is an error"),
        pytest.param({"validate_certs": "maybe"}, "image_puller_validate_certs: expected true or false",
                     id="a word that is not a boolean for validate_certs is an error"),
        pytest.param({"wait_timeout": "600.5"}, "image_puller_wait_timeout: expected a whole number",
                     id="a timeout with a fraction is an error as in an argument spec"),
        pytest.param({"caching_ephemeral_storage_request": "80Mi"}, "image_puller_caching_ephemeral_storage_request: \"80Mi\" is more than",
                     id="an ephemeral-storage request above its limit is an error"),
        pytest.param({"caching_ephemeral_storage_limit": "50MB"}, "image_puller_caching_ephemeral_storage_limit: '50MB' is not",
                     id="an ephemeral-storage limit in MB is an error"),
        pytest.param({"run_as_user": 0}, "image_puller_run_as_user: must be at least 1", id="running as root is an error"),
        pytest.param({"images": "Web=nginx"}, 'image "Web" in image_puller_images', id="image errors come through"),
    ],
)
def test_rejects(changes, message):
    with pytest.raises(SettingsError) as caught:
        settings(**changes)
    assert message in str(caught.value)


def test_without_a_yaml_loader_strings_must_be_json():
    with pytest.raises(SettingsError, match="not valid JSON or YAML"):
        normalise({**DEFAULTS, "image_puller_node_selector": "disk: ssd"})


def test_problems_in_several_variables_are_reported_together():
    with pytest.raises(SettingsError) as caught:
        settings(images="A=x", namespace="", caching_cpu_limit="lots")
    assert len(caught.value.errors) == 3


def test_configmap_data_has_the_upstream_keys_and_forms():
    data = upstream.configmap_data(settings(
        images=[{"name": "b", "image": "busybox"}, {"name": "a", "image": "alpine"}],
        image_pull_secrets=["s1", "s2"],
        node_selector={"z": "1", "a": "2"},
    ))
    assert list(data) == list(upstream.KEYS)
    assert data["IMAGES"] == "b=busybox;a=alpine;"
    assert data["IMAGE_PULL_SECRETS"] == "s1;s2;"
    assert data["NODE_SELECTOR"] == '{"a":"2","z":"1"}'
    assert data["TOLERATIONS"] == "[]" and data["AFFINITY"] == "{}"
    assert data["CACHING_INTERVAL_HOURS"] == "1"
    assert all(isinstance(v, str) for v in data.values())
    assert json.loads(data["DAEMONSET_ANNOTATIONS"]) == {}


def test_every_upstream_key_names_a_role_variable():
    for key, (variable, _default, _helm) in upstream.KEYS.items():
        assert variable.startswith("image_puller_"), key


def _argument_spec_accepts(option, value):
    spec = {option: {key: ROLE_OPTIONS[option][key] for key in ("type",)}}
    return not ArgumentSpecValidator(spec).validate({option: value}).error_messages


@pytest.mark.parametrize(
    ("option", "value"),
    [
        pytest.param(option, value, id=f"{option}={value!r}")
        for option in ("image_puller_wait", "image_puller_create_namespace", "image_puller_network_policy")
        for value in (True, False, "y", "n", "Yes", "off", "t", "F", "1", "0", 1, 0, 1.0, "maybe", "", None, [])
    ] + [
        pytest.param(option, value, id=f"{option}={value!r}")
        for option in ("image_puller_wait_timeout", "image_puller_run_as_user", "image_puller_caching_interval_hours")
        for value in (600, "600", "600.0", 600.0, 600.5, "600.5", "0x10", "six", "", None, [])
    ],
)
def test_the_role_accepts_a_number_or_boolean_exactly_when_the_argument_spec_does(option, value):
    accepted = _argument_spec_accepts(option, value)
    if value in (None, ""):
        accepted = False  # an argument spec lets an unset optional value through; the role has a default there
    try:
        settings(**{option.removeprefix("image_puller_"): value})
    except SettingsError as exc:
        assert not accepted, f"the argument spec accepts {value!r} for {option}, the role says: {exc}"
    else:
        assert accepted, f"the role accepts {value!r} for {option}, the argument spec does not"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(["image_puller_memory_limit"], ["image_puller_memory_limit: not a variable of the role kip.image_puller.image_puller; "
                                                     "did you mean image_puller_caching_memory_limit?"],
                     id="a misspelt memory limit names the caching memory limit"),
        pytest.param(["image_puller_namespce", "image_puller_images"], ["image_puller_namespce: not a variable of the role "
                                                                        "kip.image_puller.image_puller; did you mean image_puller_namespace?"],
                     id="a typo in the namespace names the namespace"),
        pytest.param(["image_puller_zzz"], ["image_puller_zzz: not a variable of the role kip.image_puller.image_puller; "
                                            "see ansible-doc -t role kip.image_puller.image_puller"],
                     id="a name close to nothing points to the documentation"),
        pytest.param(list(ROLE_OPTIONS), [], id="every option of the argument spec is known"),
    ],
)
def test_unknown_variables(given, expected):
    assert unknown_variables(given, ROLE_OPTIONS) == expected


def test_unknown_variables_stop_normalise_with_the_others():
    with pytest.raises(SettingsError) as caught:
        normalise({**DEFAULTS, "image_puller_memory_limit": "1Gi"}, given=[*DEFAULTS, "image_puller_memory_limit"], known=ROLE_OPTIONS)
    assert caught.value.errors == [unknown_variables(["image_puller_memory_limit"], ROLE_OPTIONS)[0]]


class _Reads(dict):
    """The variables as the role hands them over, noting which ones the settings code reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def test_every_variable_of_the_argument_specification_reaches_the_settings_code():
    """The role hands normalise every option but the secret ones; normalise must read each, or name it as not its own."""
    handed = _Reads({name: DEFAULTS.get(name) for name, option in ROLE_OPTIONS.items() if not option.get("no_log")})
    normalise(handed, load_text=yaml.safe_load)
    own = {f"image_puller_{name}" for name in settings_module.CONNECTION_VARIABLES + settings_module.TASK_VARIABLES}
    assert set(ROLE_OPTIONS) - own - handed.read == set(), "variables of the argument specification the settings code never reads"
    assert {name for name, option in ROLE_OPTIONS.items() if option.get("no_log")} <= own


def test_the_role_builds_the_mapping_it_hands_over_from_the_argument_specification():
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))
    assert "argument_specs.main.options" in role_vars["_image_puller_options"]
    assert "rejectattr('value.no_log', 'defined')" in role_vars["_image_puller_checked_variables"]
    assert "query('ansible.builtin.vars', *_image_puller_checked_variables" in role_vars["_image_puller_raw"]


def test_templates_read_only_the_checked_settings():
    """No template reads a role variable (image_puller_*) or a fact of its own: only _image_puller_cfg."""
    for template in sorted((ROLE / "templates").glob("*.j2")):
        names = set(re.findall(r"\b_*image_puller_[a-z_]+", template.read_text(encoding="utf-8")))
        assert names <= {"_image_puller_cfg"}, f"{template.name} reads {sorted(names - {'_image_puller_cfg'})}"


def test_derived_names_are_written_once_in_the_settings():
    out = settings()
    assert out["selector"] == {"app.kubernetes.io/name": "kubernetes-image-puller", "app.kubernetes.io/instance": "kubernetes-image-puller"}
    assert out["object_labels"]["app.kubernetes.io/managed-by"] == out["field_manager"] == "kip.image_puller"
    assert (out["deployer_name"], out["deployer_cluster_name"]) == (
        "kubernetes-image-puller-deployer", "kip.image_puller:k8s-image-puller:kubernetes-image-puller:deployer")
    assert out["node_label"] == "image-puller.kip/kubernetes-image-puller"
    assert out["deployer"] is None and out["platform"] == "auto"


@pytest.mark.parametrize(
    ("deployer", "subject"),
    [
        pytest.param({"kind": "ServiceAccount", "name": "awx", "namespace": "awx"},
                     {"kind": "ServiceAccount", "name": "awx", "namespace": "awx"}, id="a ServiceAccount keeps its namespace"),
        pytest.param({"kind": "User", "name": "jane"}, {"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"},
                     id="a User is an RBAC subject of the rbac API group"),
        pytest.param({"kind": "ServiceAccount", "name": "awx"}, None, id="a ServiceAccount without namespace is an error"),
        pytest.param({"kind": "Robot", "name": "r2"}, None, id="an unknown kind is an error"),
    ],
)
def test_deployer(deployer, subject):
    if subject is None:
        with pytest.raises(SettingsError, match="image_puller_deployer: expected kind"):
            settings(deployer=deployer)
    else:
        assert settings(deployer=deployer)["deployer"] == subject


def test_an_unknown_platform_is_an_error():
    with pytest.raises(SettingsError, match="image_puller_platform: must be one of auto, kubernetes, openshift"):
        settings(platform="k3s")
