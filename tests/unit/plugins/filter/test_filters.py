# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.kip.image_puller.plugins.filter import images, settings
from ansible_collections.kip.image_puller.tests.unit.plugins.module_utils.test_settings import DEFAULTS


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
    assert set(settings.FilterModule().filters()) == {"image_puller_settings", "upstream_config"}


def test_settings_filter_can_report_instead_of_failing():
    out = settings.image_puller_settings({**DEFAULTS, "image_puller_namespace": "Bad", "image_puller_images": "X=y"}, report=True)
    assert out["settings"] == {} and len(out["errors"]) == 2
    assert settings.image_puller_settings(DEFAULTS, report=True)["errors"] == []


def test_settings_filter_accepts_an_empty_image_list_for_removal():
    assert settings.image_puller_settings({**DEFAULTS, "image_puller_images": []}, require_images=False)["images"] == []
