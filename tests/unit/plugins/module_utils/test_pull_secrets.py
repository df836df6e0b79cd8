# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pull Secrets from registry credentials: names, docker config JSON, errors without values, masking."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import deploy
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import pull_secrets as ps
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import secret_objects
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.settings import SettingsError, normalise

ROLE = Path(__file__).resolve().parents[4] / "roles" / "image_puller"
DEFAULTS = {**yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8")), "image_puller_images": "web=nginx:1.27;"}
PASSWORD = "pa55-W0rd!"  # every test below also checks that this never shows in an error


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("registry, slug", [
    ("127.0.0.1:5011", "127-0-0-1-5011"),
    ("Registry.Example.com", "registry-example-com"),
    ("https://index.docker.io/v1/", "docker-io"),
    ("docker.io", "docker-io"),
    ("quay.io/team", "quay-io-team"),
    ("http://[::1]:5000/", "1-5000"),
    ("...", "registry"),
])
def test_registry_slug(registry, slug):
    assert ps.registry_slug(registry) == slug


@pytest.mark.parametrize("registries, names", [
    (["quay.io"], ["cache-pull-quay-io"]),
    (["quay.io", "ghcr.io"], ["cache-pull-quay-io", "cache-pull-ghcr-io"]),
    # slugs that meet get the registry's hash, whatever the order
    (["a.b:5000", "a-b-5000"], ["cache-pull-a-b-5000-812b1224", "cache-pull-a-b-5000-1fd52258"]),
    (["a-b-5000", "a.b:5000"], ["cache-pull-a-b-5000-1fd52258", "cache-pull-a-b-5000-812b1224"]),
    (["r" * 300], ["cache-pull-" + "r" * (253 - 9 - len("cache-pull-")) + "-" + ps.secret_names("x", ["r" * 300])[0][-8:]]),
])
def test_secret_names_are_unique_dns1123_and_order_free(registries, names):
    got = ps.secret_names("cache", registries)
    assert got == names
    assert all(len(name) <= 253 and name == name.lower() for name in got)
    assert len(set(got)) == len(got)


@pytest.mark.parametrize("entry, registry, auths_entry", [
    ({"registry": "127.0.0.1:5011", "username": "kip-test", "password": PASSWORD},
     "127.0.0.1:5011", {"username": "kip-test", "password": PASSWORD, "auth": b64(f"kip-test:{PASSWORD}")}),
    ({"registry": "quay.io", "username": "u", "password": PASSWORD, "email": "u@example.com"},
     "quay.io", {"username": "u", "password": PASSWORD, "auth": b64(f"u:{PASSWORD}"), "email": "u@example.com"}),
    # a docker config as a mapping, with auth only: kept as it is
    ({"docker_config": {"auths": {"ghcr.io": {"auth": b64(f"me:{PASSWORD}")}}}},
     "ghcr.io", {"auth": b64(f"me:{PASSWORD}")}),
    # the JSON text of ~/.docker/config.json, with username and password: auth is added
    ({"docker_config": json.dumps({"auths": {"https://index.docker.io/v1/": {"username": "me", "password": PASSWORD}},
                                   "credsStore": ""})},
     "https://index.docker.io/v1/", {"username": "me", "password": PASSWORD, "auth": b64(f"me:{PASSWORD}")}),
])
def test_each_entry_becomes_a_docker_config_for_its_registry(entry, registry, auths_entry):
    (secret,) = ps.pull_secrets([entry], "cache")
    assert secret["registry"] == registry
    assert json.loads(secret["dockerconfigjson"]) == {"auths": {registry: auths_entry}}


def test_a_docker_config_is_split_per_registry_in_order():
    config = {"auths": {"quay.io": {"auth": b64("a:b")}, "ghcr.io": {"auth": b64("c:d")}}}
    secrets = ps.pull_secrets([{"registry": "r.example.com", "username": "u", "password": "p"}, {"docker_config": config}], "ds")
    assert [(s["name"], s["registry"]) for s in secrets] == [
        ("ds-pull-r-example-com", "r.example.com"), ("ds-pull-quay-io", "quay.io"), ("ds-pull-ghcr-io", "ghcr.io")]
    assert [list(json.loads(s["dockerconfigjson"])["auths"]) for s in secrets] == [["r.example.com"], ["quay.io"], ["ghcr.io"]]


@pytest.mark.parametrize("value, message", [
    ("x", "expected a list"),
    ([PASSWORD], "[1]: expected a mapping, got str"),
    ([{"registry": "r", "username": "u"}], "[1]: needs registry, username and password"),
    ([{"registry": "r", "username": "u", "password": 5}], "missing or not a string: password"),
    ([{"registry": "r", "username": "u", "passwd": PASSWORD}], "unknown key(s) passwd"),
    ([{"registry": "r", "username": "u", "password": PASSWORD, "docker_config": {}}], "docker_config goes alone"),
    ([{"docker_config": "{\"auths\": " + PASSWORD}], "docker_config: is a string but not JSON"),
    ([{"docker_config": {"credsStore": "desktop", "auths": {}}}], "credsStore and credHelpers"),
    ([{"docker_config": {"auths": {"quay.io": {"identitytoken": PASSWORD}}}}], "needs auth, or username and password"),
    ([{"docker_config": {"auths": {"quay.io": {"auth": PASSWORD}}}}], "auth is not the base64 of username:password"),
    ([{"docker_config": {"auths": {"quay.io": {"token": PASSWORD}}}}], "unknown key(s) token"),
    ([{"registry": "quay.io", "username": "u", "password": PASSWORD},
      {"docker_config": {"auths": {"https://QUAY.io/": {"auth": b64("u:p")}}}}], "is given twice"),
    ([{"registry": "my registry", "username": "u", "password": PASSWORD}], "is not a registry host"),
])
def test_errors_name_the_entry_and_never_a_credential(value, message):
    with pytest.raises(ps.PullSecretError) as caught:
        ps.pull_secrets(value, "cache")
    text = str(caught.value)
    assert message in text
    assert PASSWORD not in text and b64(PASSWORD) not in text


@pytest.mark.parametrize("before, after, masked_before, masked_after", [
    (None, {"data": {".dockerconfigjson": "abc"}}, None, {"data": {".dockerconfigjson": ps.MASK_CHANGED}}),
    ({"data": {".dockerconfigjson": "abc"}}, {"data": {".dockerconfigjson": "abc"}},
     {"data": {".dockerconfigjson": ps.MASK}}, {"data": {".dockerconfigjson": ps.MASK}}),
    ({"data": {".dockerconfigjson": "abc"}}, {"data": {".dockerconfigjson": "xyz"}},
     {"data": {".dockerconfigjson": ps.MASK}}, {"data": {".dockerconfigjson": ps.MASK_CHANGED}}),
    ({"data": {"a": "1"}, "stringData": {"b": "2"}}, None, {"data": {"a": ps.MASK}, "stringData": {"b": ps.MASK}}, None),
    ({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\": 1}"}}, "data": {}},
     {"data": {}}, {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": ps.MASK}}, "data": {}}, {"data": {}}),
])
def test_mask_hides_every_value_and_still_tells_a_change(before, after, masked_before, masked_after):
    assert ps.mask(before, after) == (masked_before, masked_after)


def settings(**changes):
    return normalise({**DEFAULTS, **{f"image_puller_{k}": v for k, v in changes.items()}}, load_text=yaml.safe_load)


def test_settings_add_the_secret_names_after_the_given_ones_and_show_no_credential():
    out = settings(daemonset_name="cache", image_pull_secrets="mine;",
                   registry_credentials=[{"registry": "127.0.0.1:5011", "username": "kip-test", "password": PASSWORD}])
    assert out["image_pull_secrets"] == ["mine", "cache-pull-127-0-0-1-5011"]
    assert out["pull_secrets"] == [{"name": "cache-pull-127-0-0-1-5011", "registry": "127.0.0.1:5011"}]
    assert out["pull_secret_label"] == ps.LABEL
    assert "pull Secrets made from image_puller_registry_credentials: cache-pull-127-0-0-1-5011 (127.0.0.1:5011)" in out["notes"]
    assert PASSWORD not in json.dumps(out) and b64(PASSWORD) not in json.dumps(out)


def test_settings_compose_with_the_jarvice_config_secret_names():
    jarvice = json.dumps([{"ref": "nginx:1.27", "registry": "docker.io", "private": True, "config": "jarvice-docker"}])
    out = settings(images="", config=jarvice,
                   registry_credentials=[{"registry": "ghcr.io", "username": "u", "password": PASSWORD}])
    assert out["image_pull_secrets"] == ["jarvice-docker", "kubernetes-image-puller-pull-ghcr-io"]


def test_settings_report_bad_credentials_with_the_other_problems_and_without_values():
    with pytest.raises(SettingsError) as caught:
        settings(namespace="Bad", registry_credentials=[{"registry": "r", "password": PASSWORD}])
    assert len(caught.value.errors) == 2
    assert PASSWORD not in str(caught.value)


def secret(name="cache-pull-quay-io", **labels):
    labels = labels or {ps.LABEL: "cache", "app.kubernetes.io/managed-by": "kip.image_puller"}
    return {"metadata": {"name": name, "labels": labels}, "data": {ps.DATA_KEY: "e30="}}


@pytest.mark.parametrize("secrets, message", [
    ([secret(**{ps.LABEL: "other", "app.kubernetes.io/managed-by": "kip.image_puller"})], "needs the labels"),
    ([secret(**{ps.LABEL: "cache"})], "needs the labels"),
    ([secret(), secret()], "is given twice"),
    ([{**secret(), "metadata": {**secret()["metadata"], "namespace": "elsewhere"}}], "not in the DaemonSet's namespace"),
    ([{"data": {}}], "has no metadata.name"),
])
def test_the_module_refuses_secrets_it_could_not_prune_or_that_go_elsewhere(secrets, message):
    with pytest.raises(ImagePullerError, match="pull_secrets") as caught:
        secret_objects.check_secrets(secrets, "ns", "cache")
    assert message in str(caught.value)
    assert "e30=" not in str(caught.value)


def test_the_module_fills_in_kind_and_namespace():
    (checked,) = secret_objects.check_secrets([secret()], "ns", "cache")
    assert (checked["apiVersion"], checked["kind"], checked["metadata"]["namespace"]) == ("v1", "Secret", "ns")
    assert secret_objects.shown(checked) == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cache-pull-quay-io", "namespace": "ns"}}
    assert secret_objects.selector("cache") == f"{ps.LABEL}=cache,app.kubernetes.io/managed-by=kip.image_puller"


class FakeSecretApi:
    """Stands in for objects.ObjectApi with Secrets in one namespace: what apply_secrets reads, writes and deletes."""

    dry_run = False

    def __init__(self, live):
        self.live = {obj["metadata"]["name"]: obj for obj in live}
        self.deleted, self.applied = [], []
        self.retrier = self
        self.dynamic = self

    @staticmethod
    def call(_what, action):
        return action()

    @staticmethod
    def resource_of(_obj):
        return "secrets"

    def read(self, obj):
        return self.live.get(obj["metadata"]["name"])

    def apply(self, _resource, obj):
        self.applied.append(obj["metadata"]["name"])
        self.live[obj["metadata"]["name"]] = obj
        return obj

    def items(self, kind, _version, namespace, label_selector):
        assert (kind, namespace, label_selector) == ("Secret", "ns", secret_objects.selector("cache"))
        return [obj for obj in self.live.values() if (obj["metadata"].get("labels") or {}).get(ps.LABEL) == "cache"]

    def delete(self, _resource, name, namespace):
        assert namespace == "ns"
        self.deleted.append(name)


def full(name, data, labels=None):
    return {"apiVersion": "v1", "kind": "Secret", "type": ps.SECRET_TYPE,
            "metadata": {"name": name, "namespace": "ns", "labels": labels if labels is not None else
                         {ps.LABEL: "cache", "app.kubernetes.io/managed-by": "kip.image_puller"}},
            "data": {ps.DATA_KEY: data}}


@pytest.mark.parametrize("live, given, actions, deleted", [
    ([], [full("a", "AAA")], [("a", "created", True)], []),
    ([full("a", "AAA")], [full("a", "AAA")], [("a", "unchanged", False)], []),
    ([full("a", "AAA")], [full("a", "BBB")], [("a", "updated", True)], []),
    # a registry no longer listed: its Secret goes; one the role did not make stays
    ([full("a", "AAA"), full("b", "BBB"), full("mine", "CCC", labels={})], [full("a", "AAA")],
     [("a", "unchanged", False), ("b", "deleted", True)], ["b"]),
    ([full("a", "AAA")], [], [("a", "deleted", True)], ["a"]),
])
def test_apply_secrets_reports_by_name_and_prunes_only_its_own(live, given, actions, deleted):
    api = FakeSecretApi(live)
    checked = secret_objects.check_secrets(given, "ns", "cache")
    outcomes = []
    secret_objects.apply_secrets(api, checked, secret_objects.refuse_foreign(api, checked), namespace="ns",
                                 daemonset_name="cache", namespace_pending=False, outcomes=outcomes)
    assert [(o.report()["name"], o.report()["action"], o.report()["changed"]) for o in outcomes] == actions
    assert api.deleted == deleted
    shown = json.dumps([o.report() for o in outcomes] + [o.diff() for o in outcomes])
    assert not any(value in shown for value in ("AAA", "BBB", "CCC")), "a Secret's data shows in the result or the diff"


def test_a_foreign_secret_of_the_same_name_stops_before_any_write():
    api = FakeSecretApi([full("a", "AAA", labels={"team": "x"})])
    with pytest.raises(ImagePullerError, match="exists and was not made by kip.image_puller") as caught:
        secret_objects.refuse_foreign(api, secret_objects.check_secrets([full("a", "BBB")], "ns", "cache"))
    assert "AAA" not in str(caught.value) and "BBB" not in str(caught.value)
    assert api.applied == [] and api.deleted == []


def test_check_mode_in_a_namespace_to_be_created_shows_the_secrets_masked_and_reads_nothing():
    api = FakeSecretApi([])
    outcomes = []
    secret_objects.apply_secrets(api, secret_objects.check_secrets([full("a", "AAA")], "ns", "cache"), {}, namespace="ns",
                                 daemonset_name="cache", namespace_pending=True, outcomes=outcomes)
    assert [o.report()["action"] for o in outcomes] == ["would be created"]
    assert outcomes[0].diff()["after"]["data"] == {ps.DATA_KEY: ps.MASK_CHANGED}
    assert api.applied == []


@pytest.mark.parametrize(
    ("owner_labels", "names", "expected"),
    [
        pytest.param({}, ["cache"], "cache", id="without owner labels: the DaemonSet's name"),
        pytest.param({"app.kubernetes.io/instance": "cache"}, ["cache-amd64"], "cache",
                     id="one DaemonSet of an architecture: the instance, as the role labels its Secrets"),
        pytest.param({"app.kubernetes.io/instance": "cache"}, ["cache-amd64", "cache-arm64"], "cache",
                     id="one DaemonSet per architecture: the instance"),
    ],
)
def test_the_secrets_belong_to_the_instance_not_to_one_architecture(owner_labels, names, expected):
    definitions = [{"metadata": {"name": name, "namespace": "ns"}} for name in names]
    assert deploy.instance_name({"owner_labels": owner_labels}, definitions) == expected
