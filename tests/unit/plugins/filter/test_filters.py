# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.kip.image_puller.plugins.filter import images, settings
from ansible_collections.kip.image_puller.tests.unit.plugins.module_utils.test_settings import DEFAULTS, ROLE_DEFAULTS, ROLE_OPTIONS


def test_image_list_returns_ordered_mappings():
    assert images.image_list("b=busybox;a=alpine;") == [{"name": "b", "image": "busybox"}, {"name": "a", "image": "alpine"}]


def test_image_list_raises_a_filter_error_naming_the_entry():
    with pytest.raises(AnsibleFilterError, match='image "Canton" in image_puller_images'):
        images.image_list("Canton=canton:2.7.0")


def test_image_list_honours_reserved_names():
    with pytest.raises(AnsibleFilterError, match="init container"):
        images.image_list("copy-sleep=x", reserved=["copy-sleep"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}], "a=x;b=y;", id="a list becomes the upstream string"),
        pytest.param("a=x\nb=y", "a=x;b=y;", id="a textarea string is normalised"),
        pytest.param([], "", id="an empty list is an empty string"),
    ],
)
def test_upstream_images(value, expected):
    assert images.upstream_images(value) == expected


def test_settings_filter_reads_yaml_strings():
    out = settings.image_puller_settings({**DEFAULTS, "image_puller_tolerations": "- key: dedicated\n  operator: Exists\n"})
    assert out["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]


def test_settings_filter_raises_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="image_puller_namespace"):
        settings.image_puller_settings({**DEFAULTS, "image_puller_namespace": "Bad"})


def test_upstream_config_from_settings():
    data = settings.upstream_config(settings.image_puller_settings(DEFAULTS))
    assert data["IMAGES"] == "web=nginx:1.27;"
    assert data["KIP_IMAGE"] == "quay.io/eclipse/kubernetes-image-puller:1.1.2"


def test_upstream_config_rejects_raw_variables():
    with pytest.raises(AnsibleFilterError, match="image_puller_settings"):
        settings.upstream_config({"images": []})


def test_filter_modules_list_their_filters():
    assert set(images.FilterModule().filters()) == {"image_list", "upstream_images"}
    assert set(settings.FilterModule().filters()) == {"image_puller_settings", "manifests", "upstream_config"}


def test_settings_filter_can_report_instead_of_failing():
    out = settings.image_puller_settings({**DEFAULTS, "image_puller_namespace": "Bad", "image_puller_images": "X=y"}, report=True)
    assert out["settings"] == {} and len(out["errors"]) == 2
    assert settings.image_puller_settings(DEFAULTS, report=True)["errors"] == []


def test_settings_filter_accepts_an_empty_image_list_for_removal():
    assert settings.image_puller_settings({**DEFAULTS, "image_puller_images": []}, require_images=False)["images"] == []


def test_settings_filter_reads_image_puller_config_from_a_file_with_the_role_defaults(tmp_path):
    """The filter reads the file and takes the defaults from the argument specification's options."""
    values = tmp_path / "values.yaml"
    values.write_text("deploymentName: cache\nconfigMap:\n  images: >\n    a=busybox:1.36;\n  cachingMemoryLimit: 30Mi\n",
                      encoding="utf-8")
    raw = {**ROLE_DEFAULTS, "image_puller_config": str(values), "image_puller_caching_memory_limit": "40Mi"}
    out = settings.image_puller_settings(raw, options=ROLE_OPTIONS)
    assert (out["daemonset_name"], out["caching_memory_limit"]) == ("cache", "40Mi")
    assert out["images"] == [{"name": "a", "image": "busybox:1.36"}]
    assert out["config"]["overridden"] == ["image_puller_caching_memory_limit"]
    # Without the options every set variable is explicit, so the role's default DaemonSet name wins.
    assert settings.image_puller_settings(raw)["daemonset_name"] == "kubernetes-image-puller"
    report = settings.image_puller_settings({**raw, "image_puller_config": str(tmp_path / "missing.yaml")}, report=True,
                                            options=ROLE_OPTIONS)
    assert report["errors"][0].startswith(f"image_puller_config: cannot read the file {tmp_path / 'missing.yaml'}")


MANIFESTS = """---
# the Namespace
apiVersion: v1
kind: Namespace
metadata:
  name: image-puller
---
---
# nothing here
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: puller
  annotations:
    note: "yes"
spec:
  template:
    spec:
      containers:
        - name: web
          image: "nginx:1.27"
          args: [on, "off", 0600, 1e3]
"""


def test_manifests_are_the_objects_from_yaml_all_gives_without_the_empty_documents():
    from ansible.plugins.filter.core import from_yaml_all  # pylint: disable=import-outside-toplevel

    objects = settings.manifests(MANIFESTS)
    assert [obj["kind"] for obj in objects] == ["Namespace", "DaemonSet"]
    assert objects == [document for document in from_yaml_all(MANIFESTS) if document]
    # YAML 1.1, as Ansible reads it: on is true, 0600 octal, quoted strings stay strings
    assert objects[1]["spec"]["template"]["spec"]["containers"][0]["args"] == [True, "off", 384, "1e3"]
    assert objects[1]["metadata"]["annotations"]["note"] == "yes"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("kind: Secret\ndata: {token: c2VjcmV0\n", "the rendered manifests are not valid YAML at line 3, column 1: ",
                     id="bad YAML: where and what, without the text around it (a Secret's data)"),
        pytest.param(["kind: Namespace"], "manifests expects the rendered YAML text, got list", id="not a string"),
    ],
)
def test_manifests_refuses_what_is_not_yaml_text(value, message):
    with pytest.raises(AnsibleFilterError, match=f"^{message}") as raised:
        settings.manifests(value)
    assert "c2VjcmV0" not in str(raised.value)


def test_manifests_reads_a_str_subclass_as_ansible_hands_over_rendered_text():
    class Tagged(str):
        """Stands for ansible-core's tagged strings, which libyaml's parser refuses as they are."""

    assert [obj["kind"] for obj in settings.manifests(Tagged(MANIFESTS))] == ["Namespace", "DaemonSet"]


def test_manifests_of_only_empty_documents_is_an_empty_list():
    assert settings.manifests("---\n# nothing\n---\n") == []
