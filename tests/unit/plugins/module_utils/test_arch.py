# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-architecture images: the arch entries of image_puller_images, the split into DaemonSets, and what covers them
all (quota sum, stale DaemonSets, the combined info summary)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import arch, info, prune, runner
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.images import ImageListError, parse_image_list, to_upstream_string
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quota import check_daemonset, combine, failure_message
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.settings import SettingsError, normalise

ROLE = Path(__file__).resolve().parents[4] / "roles" / "image_puller"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
SELECTOR = {"app.kubernetes.io/name": "kubernetes-image-puller", "app.kubernetes.io/instance": "kip"}
LABELS = {**SELECTOR, "app.kubernetes.io/managed-by": "kip.image_puller"}
MIXED = [
    {"name": "web", "image": "nginx:1.27"},
    {"name": "ubuntu", "arch": {"amd64": "docker.io/library/ubuntu:xenial", "ppc64le": "docker.io/ppc64le/ubuntu:xenial"}},
    {"name": "only-amd", "arch": {"amd64": "r.io/amd:1"}},
    {"name": "tool", "image": "r.io/tool:1", "arch": {"ppc64le": "r.io/tool-ppc:1"}},
]


def split(images, node_selector=None):
    parsed = parse_image_list(images)[0]
    return arch.daemonsets(parsed, name="kip", selector=SELECTOR, object_labels=LABELS, node_selector=node_selector or {})


def settings(**changes):
    return normalise({**DEFAULTS, "image_puller_images": "web=nginx:1.27;",
                      **{f"image_puller_{k}": v for k, v in changes.items()}}, load_text=yaml.safe_load)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param([{"name": "u", "arch": {"ppc64le": "p/u:1", "amd64": "a/u:1"}}],
                     [{"name": "u", "arch": {"amd64": "a/u:1", "ppc64le": "p/u:1"}}], id="an arch map, sorted by architecture"),
        pytest.param([{"arch": {"ppc64le": "docker.io/ppc64le/ubuntu:xenial", "amd64": "docker.io/library/ubuntu:xenial"}}],
                     [{"name": "ubuntu", "arch": {"amd64": "docker.io/library/ubuntu:xenial", "ppc64le": "docker.io/ppc64le/ubuntu:xenial"}}],
                     id="without a name, it is derived from the first architecture's image"),
        pytest.param([{"image": "r.io/tool:1", "arch": {"arm64": "r.io/tool-arm:1"}}],
                     [{"name": "tool", "image": "r.io/tool:1", "arch": {"arm64": "r.io/tool-arm:1"}}],
                     id="with an image beside it (the fallback), the name comes from that image"),
        pytest.param(["web=nginx:1.27", {"arch": {"amd64": "r.io/web:2"}}],
                     [{"name": "web", "image": "nginx:1.27"}, {"name": "web-2", "arch": {"amd64": "r.io/web:2"}}],
                     id="a derived name never takes a given one"),
    ],
)
def test_arch_entries_parse(value, expected):
    assert parse_image_list(value)[0] == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param([{"name": "u", "arch": {"x86_64": "u:1"}}], 'unknown architecture "x86_64" (did you mean amd64?); '
                     "architectures are values of the node label kubernetes.io/arch: 386, amd64,", id="uname -m names get a hint"),
        pytest.param([{"name": "u", "arch": {"ppc64el": "u:1"}}], 'unknown architecture "ppc64el" (did you mean ppc64le?)',
                     id="Debian's name for ppc64le"),
        pytest.param([{"name": "u", "arch": {"sparc": "u:1"}}], 'unknown architecture "sparc"; architectures are',
                     id="an architecture Kubernetes does not know"),
        pytest.param([{"name": "u", "arch": {}}], "arch must map each architecture (kubernetes.io/arch, such as amd64) to an image",
                     id="an empty arch map"),
        pytest.param([{"name": "u", "arch": "amd64"}], "arch must map each architecture", id="arch as a string"),
        pytest.param([{"name": "u", "arch": {"amd64": ""}}], "arch amd64 must name an image reference, got ''", id="an empty image"),
        pytest.param([{"name": "u", "arch": {"amd64": "r.io/Bad"}}], 'image "u" in image_puller_images: invalid image reference '
                     '"r.io/Bad": repository path component "Bad" must be lowercase', id="each architecture's reference is checked"),
        pytest.param([{"name": "u", "arch": {"amd64": "a:1"}, "os": "linux"}], "unknown key(s) os; only name, image and arch",
                     id="other keys are still refused"),
    ],
)
def test_bad_arch_entries_are_named(value, message):
    with pytest.raises(ImageListError) as caught:
        parse_image_list(value)
    assert message in str(caught.value)


def test_without_an_arch_map_there_is_one_daemonset_as_today():
    sets = split(["web=nginx:1.27", "redis:7"], node_selector={"kubernetes.io/os": "linux"})
    assert sets == [{"name": "kip", "arch": None, "selector": SELECTOR, "labels": LABELS, "node_selector": {"kubernetes.io/os": "linux"},
                     "images": [{"name": "web", "image": "nginx:1.27"}, {"name": "redis", "image": "redis:7"}], "skipped": []}]


def test_with_arch_maps_there_is_one_daemonset_per_architecture_named():
    sets = split(MIXED, node_selector={"kubernetes.io/os": "linux"})
    assert [(s["name"], s["arch"]) for s in sets] == [("kip-amd64", "amd64"), ("kip-ppc64le", "ppc64le")]
    amd, ppc = sets
    assert amd["selector"] == {**SELECTOR, arch.POD_ARCH_LABEL: "amd64"}
    assert amd["labels"] == {**LABELS, arch.POD_ARCH_LABEL: "amd64"}
    assert amd["node_selector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    assert amd["images"] == [{"name": "web", "image": "nginx:1.27"}, {"name": "ubuntu", "image": "docker.io/library/ubuntu:xenial"},
                             {"name": "only-amd", "image": "r.io/amd:1"}, {"name": "tool", "image": "r.io/tool:1"}]
    assert amd["skipped"] == []
    assert ppc["node_selector"]["kubernetes.io/arch"] == "ppc64le"
    assert ppc["images"] == [{"name": "web", "image": "nginx:1.27"}, {"name": "ubuntu", "image": "docker.io/ppc64le/ubuntu:xenial"},
                             {"name": "tool", "image": "r.io/tool-ppc:1"}]
    assert ppc["skipped"] == ["only-amd"]
    # the selectors differ, so no DaemonSet's selector matches another's pods
    assert not all(amd["selector"].get(k) == v for k, v in ppc["labels"].items() if k in amd["selector"])


def test_the_settings_carry_the_split_and_say_what_is_skipped():
    out = settings(images=MIXED, daemonset_name="kip")
    assert [s["name"] for s in out["daemonsets"]] == ["kip-amd64", "kip-ppc64le"]
    assert out["owner_labels"] == LABELS
    assert any(line.startswith("per-architecture DaemonSets (nodes of other architectures get no pod): kip-amd64 "
                               "(kubernetes.io/arch=amd64): web=nginx:1.27,") for line in out["notes"])
    assert "skipped on ppc64le (no ppc64le image and no image to fall back to): only-amd" in out["notes"]
    plain = settings(daemonset_name="kip")
    assert [s["name"] for s in plain["daemonsets"]] == ["kip"] and not any("per-architecture" in n for n in plain["notes"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"node_selector": {"kubernetes.io/arch": "amd64"}},
                     "image_puller_node_selector sets kubernetes.io/arch ('amd64'), but entries of image_puller_images have an "
                     "arch map", id="a node selector that picks an architecture itself"),
        pytest.param({"daemonset_name": "a" * 58}, "the DaemonSets per architecture would be called " + "a" * 58 + "-amd64, " + "a" * 58 + "-ppc64le, "
                     "longer than 63 characters; use a name of at most 55 characters", id="a derived DaemonSet name too long"),
    ],
)
def test_the_split_refuses(changes, message):
    with pytest.raises(SettingsError) as caught:
        settings(images=MIXED, **changes)
    assert any(message in error for error in caught.value.errors), caught.value.errors


def test_the_upstream_images_string_leaves_out_entries_without_an_image():
    assert to_upstream_string(parse_image_list(MIXED)[0]) == "web=nginx:1.27;tool=r.io/tool:1;"


def _ds(name, images):
    containers = [{"name": f"c{i}", "image": "r/x:1", "resources": {"limits": {"memory": "20Mi"}, "requests": {"memory": "10Mi"}}}
                  for i in range(images)]
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"a": name}}, "template": {"spec": {"containers": containers}}}}


@pytest.mark.parametrize(
    ("hard", "fits", "short"),
    [
        pytest.param("140Mi", True, None, id="60Mi for the first and 80Mi for the second fit 140Mi"),
        pytest.param("130Mi", False, 'DaemonSet "kip-ppc64le": 20Mi x 2 containers x 2 nodes = 80Mi limits.memory needed, '
                     '70Mi available in ResourceQuota "q" (namespace ns)', id="the second DaemonSet sees what the first leaves"),
    ],
)
def test_the_quota_check_sums_every_daemonset(hard, fits, short):
    quota = [{"metadata": {"name": "q", "namespace": "ns"}, "spec": {"hard": {"limits.memory": hard}},
              "status": {"used": {"limits.memory": "0"}}}]
    amd_nodes = [{"metadata": {"name": f"a{i}", "labels": {}}} for i in range(3)]
    ppc_nodes = [{"metadata": {"name": f"p{i}", "labels": {}}} for i in range(2)]
    earlier = {}
    # 20Mi x 1 x 3 = 60Mi, then 20Mi x 2 x 2 = 80Mi: 140Mi together
    results = [check_daemonset(_ds("kip-amd64", 1), namespace="ns", nodes=amd_nodes, resource_quotas=quota, earlier=earlier),
               check_daemonset(_ds("kip-ppc64le", 2), namespace="ns", nodes=ppc_nodes, resource_quotas=quota, earlier=earlier)]
    together = combine(results)
    assert together["fits"] is fits
    assert together["eligible_nodes"] == 5 and together["daemonset"] == "kip-amd64, kip-ppc64le"
    assert [row["daemonset"] for row in together["rows"]] == ["kip-amd64", "kip-ppc64le"]
    if short:
        assert any(text.startswith(short) and text.endswith("after the other DaemonSets of this deploy: short by 10Mi")
                   for text in together["shortfalls"]), together["shortfalls"]
        assert failure_message(together).startswith('image_puller_quota: DaemonSet "kip-amd64, kip-ppc64le" does not fit')


def test_one_daemonset_is_checked_as_before():
    alone = check_daemonset(_ds("kip", 1), namespace="ns", nodes=[{"metadata": {"name": "a", "labels": {}}}])
    assert combine([alone]) is alone


@pytest.mark.parametrize(
    ("labels", "keep", "stale"),
    [
        pytest.param({"kip-amd64": LABELS, "kip-ppc64le": LABELS, "kip": LABELS}, ["kip"], ["kip-amd64", "kip-ppc64le"],
                     id="back to one DaemonSet: the per-architecture ones are stale"),
        pytest.param({"kip-amd64": LABELS, "kip": LABELS}, ["kip-amd64", "kip-ppc64le"], ["kip"],
                     id="to per-architecture: the single one is stale"),
        pytest.param({"kip-amd64": LABELS, "other": {**LABELS, "app.kubernetes.io/instance": "other"},
                      "hand-made": {"app.kubernetes.io/instance": "kip"}}, ["kip-ppc64le"], ["kip-amd64"],
                     id="another instance and a DaemonSet without the managed-by label are not ours"),
    ],
)
def test_stale_daemonsets_are_the_owned_ones_not_wanted(labels, keep, stale):
    found = [{"metadata": {"name": name, "labels": value}} for name, value in labels.items()]
    assert prune.stale(found, LABELS, keep) == stale


def test_the_info_summary_covers_every_daemonset():
    amd = {"exists": True, "nodes": 6, "eligible": 3, "ready": 3, "updated": 3, "images": ["web", "u-amd"],
           "cached_everywhere": ["web", "u-amd"], "complete": True, "fully_cached_nodes": ["a0", "a1", "a2"], "lacking": []}
    lack = {"node": "p1", "container": "u", "image": "u-ppc", "state": "waiting", "reason": "ErrImagePull", "message": "x"}
    ppc = {"exists": True, "nodes": 6, "eligible": 2, "ready": 1, "updated": 2, "images": ["web", "u-ppc"],
           "cached_everywhere": ["web"], "complete": False, "fully_cached_nodes": ["p0"], "lacking": [lack]}
    both = info.combine_summaries([amd, ppc])
    assert (both["nodes"], both["eligible"], both["ready"], both["updated"], both["complete"]) == (6, 5, 4, 5, False)
    assert both["images"] == ["web", "u-amd", "u-ppc"] and both["cached_everywhere"] == ["web", "u-amd"]
    assert both["fully_cached_nodes"] == ["a0", "a1", "a2", "p0"] and both["lacking"] == [lack]
    assert info.combine_summaries([amd]) == amd


def _definition(name, namespace="ns"):
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"selector": {"matchLabels": {"a": name}}}}


@pytest.mark.parametrize(
    ("params", "names", "message"),
    [
        pytest.param({"definition": _definition("kip")}, ["kip"], None, id="one definition, as before"),
        pytest.param({"definitions": [_definition("kip-amd64"), _definition("kip-ppc64le")]}, ["kip-amd64", "kip-ppc64le"], None,
                     id="one per architecture"),
        pytest.param({"definitions": [_definition("a"), _definition("b", "other")]}, None,
                     "the DaemonSets of definitions must share one namespace, got ns, other", id="two namespaces"),
        pytest.param({"definitions": [_definition("a"), _definition("a")]}, None, "definitions names DaemonSet a more than once",
                     id="a name twice"),
        pytest.param({}, None, "give definition (one DaemonSet) or definitions", id="neither"),
    ],
)
def test_the_daemonset_module_takes_one_definition_or_several(params, names, message):
    full = {"definition": None, "definitions": None, "namespace": None, "state": "present", **params}
    if message:
        with pytest.raises(ImagePullerError, match=re.escape(message)):
            runner._definitions(full)  # pylint: disable=protected-access
    else:
        assert [d["metadata"]["name"] for d in runner._definitions(full)] == names  # pylint: disable=protected-access
