# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""image_puller_config: each seed's own example configuration (tests/unit/fixtures/seeds/) in, settings out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import seeds
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.settings import SettingsError, normalise

REPO = Path(__file__).resolve().parents[4]
FIXTURES = REPO / "tests" / "unit" / "fixtures" / "seeds"
ROLE = REPO / "roles" / "image_puller"
ROLE_DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
OPTIONS = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]
# What the role hands over: the argument specification's defaults tell explicit variables apart.
SPEC_DEFAULTS = {name: spec.get("default") for name, spec in OPTIONS.items()}


def load_file(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def settings(config, **explicit):
    raw = {**ROLE_DEFAULTS, "image_puller_config": config, **{f"image_puller_{k}": v for k, v in explicit.items()}}
    return normalise(raw, load_text=yaml.safe_load, load_file=load_file, defaults=SPEC_DEFAULTS)


def fixture(name: str) -> str:
    return str(FIXTURES / name)


CHE = [("java11-maven", "quay.io/eclipse/che-java11-maven:nightly"), ("che-theia", "quay.io/eclipse/che-theia:next")]
UPSTREAM_DEFAULTS = {"caching_interval_seconds": 3600, "caching_memory_request": "10Mi", "caching_memory_limit": "20Mi",
                     "caching_cpu_request": ".05", "caching_cpu_limit": ".2", "node_selector": {},
                     "daemonset_name": "kubernetes-image-puller"}
# An arch map stays one: jarvice pulls its images only on nodes of those architectures (one DaemonSet per architecture).
JARVICE_SINGLE = {"images": [{"name": "ubuntu", "arch": {"amd64": "docker.io/library/ubuntu:xenial"}},
                             {"name": "abc123", "arch": {"amd64": "docker.io/kenhill/abc123:test"}}],
                  "image_pull_secrets": ["jarvice-docker"]}
JARVICE = {**JARVICE_SINGLE, "images": [
    {"name": "ubuntu", "arch": {"amd64": "docker.io/library/ubuntu:xenial", "ppc64le": "docker.io/ppc64le/ubuntu:xenial"}},
    JARVICE_SINGLE["images"][1]]}
JARVICE_IGNORED = ["entry 1 (ref 'ubuntu:xenial'): config (the image is not private, so no pull secret is needed)"]


@pytest.mark.parametrize(
    ("name", "fmt", "expected", "ignored"),
    [
        pytest.param("000-helm-values-daml.txt", seeds.HELM, {
            "images": [("canton-enterprise", "acr.example.io/digitalasset/canton-enterprise:2.7.0"),
                       ("canton-enterprise-debug", "acr.example.io/digitalasset/canton-enterprise:2.7.0-debug"),
                       ("http-json", "acr.example.io/http-json:2.7.0")],
            "puller_image": "quay.io/eclipse/kubernetes-image-puller:next", "affinity": {},
            "namespace": "k8s-image-puller", **UPSTREAM_DEFAULTS},
            ["serviceAccount.name (the role names its ServiceAccount after the DaemonSet)",
             "configMap.name (the role names its ConfigMap after the DaemonSet)"],
            id="seed 000: the Daml values file of the upstream Helm chart, nodeSelector given as the string {}"),
        pytest.param("002-jarvice-image-single-arch.config", seeds.JARVICE,
                     {**JARVICE_SINGLE, "caching_interval_seconds": 3600}, JARVICE_IGNORED,
                     id="seed 002: the jarvice list; a private entry's config Secret becomes a pull secret"),
        pytest.param("002-jarvice-configmap-single-arch.yaml", seeds.JARVICE_DATA + " (of a ConfigMap manifest)",
                     {**JARVICE_SINGLE, "caching_interval_seconds": 300}, JARVICE_IGNORED,
                     id="seed 002: the image-cache ConfigMap; interval=300 seconds is the caching interval"),
        pytest.param("002-jarvice-image.config", seeds.JARVICE, {**JARVICE, "caching_interval_seconds": 3600}, JARVICE_IGNORED,
                     id="seed 002 verbatim: an image per architecture"),
        pytest.param("002-jarvice-configmap.yaml", seeds.JARVICE_DATA + " (of a ConfigMap manifest)",
                     {**JARVICE, "caching_interval_seconds": 300}, JARVICE_IGNORED,
                     id="seed 002 verbatim as its ConfigMap"),
        pytest.param("003-prepuller-values.yaml", seeds.PREPULLER, {
            "images": [("busybox-1-27", "gcr.io/google-containers/busybox:1.27"), ("busybox-1-musl", "busybox:1-musl")]},
            ["docker.hostPath (nothing is mounted from the node; the kubelet keeps the images)"],
            id="seed 003: docker.images, plain references get derived names; docker.hostPath is ignored"),
        pytest.param("004-configmap-data.yaml", seeds.UPSTREAM_DATA,
                     {"images": CHE, "namespace": "kubernetes-image-puller", **UPSTREAM_DEFAULTS}, [],
                     id="seeds 001/004: the upstream ConfigMap data"),
        pytest.param("004-configmap.yaml", seeds.UPSTREAM_DATA + " (of a ConfigMap manifest)",
                     {"images": CHE, "namespace": "kubernetes-image-puller", **UPSTREAM_DEFAULTS}, [],
                     id="seeds 001/004: the whole upstream ConfigMap"),
        pytest.param("004-deployment-env.yaml", seeds.UPSTREAM_ENV,
                     {"images": CHE, "namespace": "kubernetes-image-puller", **UPSTREAM_DEFAULTS},
                     ["DEPLOYMENT_NAME (the role runs no controller Deployment)"],
                     id="seeds 001/004: the controller Deployment's environment"),
    ],
)
def test_each_seed_configuration_deploys_as_given(name, fmt, expected, ignored):
    out = settings(fixture(name))
    for key, value in expected.items():
        if key == "images":
            value = [item if isinstance(item, dict) else {"name": item[0], "image": item[1]} for item in value]
        assert out[key] == value, key
    assert out["config"]["format"] == fmt
    assert out["config"]["source"] == fixture(name)
    assert out["config"]["ignored"] == ignored
    assert out["config"]["overridden"] == []
    assert any(line.startswith("image_puller_config: read " + fmt) for line in out["notes"])


def test_seed_004_openshift_parameters_need_images_and_leave_the_controller_out():
    with pytest.raises(SettingsError, match="image_puller_images is empty"):
        settings(fixture("004-openshift-parameters.yaml"))
    out = settings(fixture("004-openshift-parameters.yaml"), images="busybox:1.36")
    assert out["config"]["format"] == seeds.OPENSHIFT
    assert out["puller_image"] == ROLE_DEFAULTS["image_puller_puller_image"]
    assert out["images"] == [{"name": "busybox", "image": "busybox:1.36"}]
    assert out["caching_interval_seconds"] == 3600 and out["caching_memory_limit"] == "20Mi"
    assert sorted(out["config"]["ignored"]) == [
        "DEPLOYMENT_NAME (the role runs no controller Deployment)",
        "IMAGE (the controller's image; the puller image is KIP_IMAGE)",
        "IMAGE_TAG (the controller's image; the puller image is KIP_IMAGE)",
        "SERVICEACCOUNT_NAME (the role names its ServiceAccount after the DaemonSet)"]
    assert "derived container names: busybox=busybox:1.36" in out["notes"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("000-helm-values.txt",
                     'entry "<image>=<repository>/<image>:<tag>" in image_puller_images (from image_puller_config '
                     "configMap.images): holds the placeholder(s) <image>, <repository>, <tag> of a documentation template",
                     id="seed 000 verbatim: its placeholders are refused, naming the Helm key they came from"),
    ],
)
def test_a_seed_template_with_placeholders_fails_clearly(name, message):
    with pytest.raises(SettingsError) as caught:
        settings(fixture(name))
    assert message in str(caught.value)
    assert "image_puller_images is empty" not in str(caught.value)


@pytest.mark.parametrize(
    ("config", "explicit", "key", "expected", "overridden"),
    [
        pytest.param("004-configmap-data.yaml", {"namespace": "mine"}, "namespace", "mine", ["image_puller_namespace"],
                     id="an explicit variable wins over the configuration"),
        pytest.param("004-configmap-data.yaml", {"namespace": "k8s-image-puller"}, "namespace", "kubernetes-image-puller", [],
                     id="a variable at its default does not count as explicit"),
        pytest.param("004-configmap-data.yaml", {"caching_interval_hours": "1"}, "caching_interval_seconds", 3600, [],
                     id="the default written as a string is still the default"),
        pytest.param("004-configmap-data.yaml", {"caching_interval_hours": "2"}, "caching_interval_seconds", 7200,
                     ["image_puller_caching_interval_hours"], id="a survey string that differs is explicit"),
        pytest.param("003-prepuller-values.yaml", {"images": ""}, "images",
                     [{"name": "busybox-1-27", "image": "gcr.io/google-containers/busybox:1.27"},
                      {"name": "busybox-1-musl", "image": "busybox:1-musl"}], [],
                     id="a blank image list is the default, not an explicit empty one"),
        pytest.param("003-prepuller-values.yaml", {"images": ["web=nginx"]}, "images", [{"name": "web", "image": "nginx"}],
                     ["image_puller_images"], id="explicit images replace the configuration's"),
    ],
)
def test_explicit_variables_win(config, explicit, key, expected, overridden):
    out = settings(fixture(config), **explicit)
    assert out[key] == expected
    assert out["config"]["overridden"] == overridden
    if overridden:
        assert f"set explicitly, winning over image_puller_config: {', '.join(overridden)}" in out["notes"]


HELM = yaml.safe_load((FIXTURES / "000-helm-values-daml.txt").read_text(encoding="utf-8"))
JARVICE_ENTRY = {"ref": "app:1", "registry": "docker.io", "private": False, "arch": {"amd64": "docker.io/x/app:1"}}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({**HELM, "configMap": {**HELM["configMap"], "cachingMemeryLimit": "20Mi"}},
                     "image_puller_config (upstream kubernetes-image-puller Helm chart values): unknown key "
                     "'configMap.cachingMemeryLimit'; did you mean configMap.cachingMemoryLimit?",
                     id="an unknown Helm key is named with the format and the nearest known key"),
        pytest.param({"IMAGES": "a=b;", "CACHING_HOURS": "1"},
                     "image_puller_config (upstream kubernetes-image-puller ConfigMap data): unknown key 'CACHING_HOURS'",
                     id="an unknown upstream key"),
        pytest.param({"docker": {"images": ["busybox"], "pullPolicy": "Always"}},
                     "image_puller_config (images-prepuller chart values): unknown key 'docker.pullPolicy'",
                     id="an unknown prepuller key"),
        pytest.param({"docker": {"images": "busybox"}}, "docker.images must be a list of image references",
                     id="prepuller images must be a list"),
        pytest.param([{**JARVICE_ENTRY, "tag": "x"}], "entry 1 (ref 'app:1'): unknown key 'tag'", id="an unknown jarvice key"),
        pytest.param([{**JARVICE_ENTRY, "private": "yes"}], "private must be true or false", id="jarvice private must be a boolean"),
        pytest.param({"image.config": json.dumps([JARVICE_ENTRY]), "interval": "5m"},
                     "interval must be a whole number of seconds, got '5m'", id="the jarvice interval is whole seconds"),
        pytest.param({"image.config": "[not json", "interval": "300"}, "file 'image.config' is not valid JSON",
                     id="the jarvice file must be JSON"),
        pytest.param([{"name": "IMAGES", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}}],
                     "entry 1 (IMAGES) takes its value from elsewhere (valueFrom); give the value itself",
                     id="an environment entry with valueFrom"),
        pytest.param({"replicas": 1}, "image_puller_config: cannot tell which configuration this is (keys: replicas)",
                     id="an unrecognisable mapping names its keys and the known formats"),
        pytest.param(42, "image_puller_config: expected the path of a YAML or JSON file, or a mapping or list",
                     id="a number"),
        pytest.param("/nonexistent/puller.yaml", "image_puller_config: cannot read the file /nonexistent/puller.yaml",
                     id="a missing file"),
        pytest.param("{images: [", "image_puller_config: cannot read the text", id="unparseable inline text"),
        pytest.param({"deploymentName": "x", "appName": "y"},
                     "appName and deploymentName both set image_puller_daemonset_name and differ; keep one",
                     id="two keys for one variable that disagree"),
        pytest.param({"IMAGES": "a=b;", "CACHING_MEMORY_LIMIT": "lots"},
                     "image_puller_caching_memory_limit (from image_puller_config CACHING_MEMORY_LIMIT):",
                     id="a bad value names the foreign key it came from"),
        pytest.param({"kind": "ConfigMap", "metadata": {"name": "x"}}, "a ConfigMap manifest without data",
                     id="a ConfigMap without data"),
    ],
)
def test_bad_configurations_are_refused_with_what_to_do(config, message):
    with pytest.raises(SettingsError) as caught:
        settings(config)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("config", "key", "expected"),
    [
        pytest.param('{"IMAGES": "a=busybox;", "DAEMONSET_NAME": "cache"}', "daemonset_name", "cache",
                     id="inline JSON text"),
        pytest.param("docker:\n  images: [busybox]\n", "images", [{"name": "busybox", "image": "busybox"}],
                     id="inline YAML text spanning lines"),
        pytest.param([{"name": "IMAGES", "value": "a=busybox;"}, {"name": "IMAGE", "value": "r.io/controller"}],
                     "puller_image", "quay.io/eclipse/kubernetes-image-puller:1.1.2",
                     id="an OpenShift parameters list; IMAGE is the controller's, not the puller image"),
        pytest.param({"configMap": {"images": "a=busybox;"}, "image": {"tag": "1.1.1"}}, "puller_image",
                     "quay.io/eclipse/kubernetes-image-puller:1.1.1", id="Helm image.tag alone: upstream's repository"),
        pytest.param({"configMap": {"images": "a=busybox;"}, "priorityClassName": "high"}, "priority_class_name", "high",
                     id="Helm priorityClassName goes to the puller pods"),
        pytest.param({"configMap": {"images": "a=busybox;"}, "priorityClassName": {}}, "priority_class_name", "",
                     id="Helm priorityClassName left at the chart's {} means none"),
        pytest.param({"IMAGES": "a=busybox;", "KIP_IMAGE": "r.io/p:1"}, "puller_image", "r.io/p:1",
                     id="KIP_IMAGE in the ConfigMap data"),
        pytest.param({"appName": "cache", "configMap": {"images": "a=busybox;"}}, "daemonset_name", "cache",
                     id="the older charts' appName"),
        pytest.param([{"ref": "app:1", "registry": "r.io", "private": True}], "image_pull_secrets", ["jarvice-docker"],
                     id="a private jarvice entry without config uses jarvice's default Secret"),
        pytest.param([{"ref": "app:1", "registry": "r.io"}], "images", [{"name": "app", "image": "r.io/app:1"}],
                     id="a jarvice entry without arch is ref on its registry"),
        pytest.param([{"ref": "app", "arch": {"amd64": "r.io/app:2", "arm64": "r.io/app:2"}}], "images",
                     [{"name": "app", "arch": {"amd64": "r.io/app:2", "arm64": "r.io/app:2"}}],
                     id="a jarvice arch map stays an arch map, also when it names one image for all"),
        pytest.param({}, "config", {}, id="an empty mapping is no configuration"),
    ],
)
def test_more_forms(config, key, expected):
    raw_images = {} if (isinstance(config, (dict, list)) and config) or isinstance(config, str) else {"images": "a=b"}
    assert settings(config, **raw_images)[key] == expected


def test_a_jarvice_arch_maps_keys_are_checked_naming_the_entry():
    with pytest.raises(SettingsError) as caught:
        settings([{"ref": "app", "arch": {"x86_64": "r.io/app:2"}}])
    assert 'unknown architecture "x86_64" (did you mean amd64?)' in str(caught.value)
    assert "(from image_puller_config" in str(caught.value)


def test_the_helm_keys_come_from_the_upstream_table():
    """seeds.py spells no upstream key: its Helm paths are upstream.KEYS' third column."""
    assert seeds.HELM_PATHS["configMap.cachingMemoryLimit"] == "CACHING_MEMORY_LIMIT"
    assert seeds.HELM_PATHS["deploymentName"] == "DAEMONSET_NAME"
    assert seeds.HELM_IMAGE == ("image.repository", "image.tag")


def test_without_defaults_a_set_variable_is_explicit():
    raw = {**ROLE_DEFAULTS, "image_puller_config": {"IMAGES": "a=busybox;", "DAEMONSET_NAME": "cache"}}
    out = normalise(raw, load_text=yaml.safe_load)
    assert out["daemonset_name"] == "kubernetes-image-puller"
    assert out["config"]["overridden"] == ["image_puller_daemonset_name"]
