# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.footprint import (
    normalize_limit_range_item,
    pod_footprint,
)


def container(name, requests=None, limits=None, **extra):
    resources = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "registry.example/app:1", "resources": resources, **extra}


def limit_range(name, *items):
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"limits": list(items)}}


UPSTREAM = {"requests": {"cpu": ".05", "memory": "10Mi"}, "limits": {"cpu": ".2", "memory": "20Mi"}}


@pytest.mark.parametrize(
    ("spec", "limit_ranges", "expected"),
    [
        pytest.param(
            {"containers": [container(f"img{i}", **UPSTREAM) for i in range(5)]}, [],
            {"requests.cpu": "250m", "cpu": "250m", "limits.cpu": "1000m", "requests.memory": "50Mi", "memory": "50Mi", "limits.memory": "100Mi"},
            id="five upstream-default containers sum to 250m/1000m cpu and 50Mi/100Mi memory",
        ),
        pytest.param(
            {"initContainers": [container("init", {"memory": "300Mi"}, {"memory": "300Mi"})],
             "containers": [container("a", {"memory": "100Mi"}, {"memory": "100Mi"}), container("b", {"memory": "100Mi"}, {"memory": "100Mi"})]},
            [], {"requests.memory": "300Mi", "limits.memory": "300Mi"},
            id="a large init container sets the footprint when it exceeds the sum of the containers",
        ),
        pytest.param(
            {"initContainers": [container("init", {"memory": "50Mi"}, {"memory": "50Mi"})],
             "containers": [container("a", {"memory": "100Mi"}, {"memory": "100Mi"}), container("b", {"memory": "100Mi"}, {"memory": "100Mi"})]},
            [], {"requests.memory": "200Mi", "limits.memory": "200Mi"},
            id="a small init container is hidden by the sum of the containers",
        ),
        pytest.param(
            {"initContainers": [container("init1", {"cpu": "500m"}), container("init2", {"cpu": "300m"})],
             "containers": [container("a", {"cpu": "100m"})]},
            [], {"requests.cpu": "500m"},
            id="init containers run one at a time so only the largest counts",
        ),
        pytest.param(
            {"initContainers": [container("sidecar", {"memory": "40Mi"}, restartPolicy="Always")],
             "containers": [container("a", {"memory": "100Mi"})]},
            [], {"requests.memory": "140Mi"},
            id="a sidecar init container (restartPolicy Always) adds to the containers",
        ),
        pytest.param(
            {"initContainers": [container("sidecar", {"memory": "40Mi"}, restartPolicy="Always"), container("setup", {"memory": "100Mi"})],
             "containers": [container("a", {"memory": "50Mi"})]},
            [], {"requests.memory": "140Mi"},
            id="an init container after a sidecar runs beside it, so that phase counts both",
        ),
        pytest.param(
            {"initContainers": [container("setup", {"memory": "100Mi"}), container("sidecar", {"memory": "40Mi"}, restartPolicy="Always")],
             "containers": [container("a", {"memory": "50Mi"})]},
            [], {"requests.memory": "100Mi"},
            id="an init container before a sidecar runs alone",
        ),
        pytest.param(
            {"containers": [container("a", **UPSTREAM)], "overhead": {"cpu": "10m", "memory": "5Mi"}},
            [], {"requests.cpu": "60m", "limits.cpu": "210m", "requests.memory": "15Mi", "limits.memory": "25Mi"},
            id="pod overhead adds to requests and to the limits that are set",
        ),
        pytest.param(
            {"containers": [container("a", {"cpu": "50m"})], "overhead": {"cpu": "10m"}},
            [], {"requests.cpu": "60m", "limits.cpu": None},
            id="pod overhead adds no limit where the containers set none",
        ),
        pytest.param(
            {"containers": [container("a", limits={"cpu": "200m", "memory": "20Mi"})]},
            [], {"requests.cpu": "200m", "requests.memory": "20Mi", "limits.memory": "20Mi"},
            id="a limit without a request makes the request equal to the limit as API defaulting does",
        ),
        pytest.param(
            {"containers": [container("a")]},
            [limit_range("defaults", {"type": "Container", "default": {"memory": "64Mi"}, "defaultRequest": {"memory": "32Mi", "cpu": "25m"}})],
            {"requests.memory": "32Mi", "limits.memory": "64Mi", "requests.cpu": "25m", "limits.cpu": None},
            id="LimitRange default and defaultRequest fill an unset container",
        ),
        pytest.param(
            {"containers": [container("a", {"memory": "10Mi"}, {"memory": "20Mi"})]},
            [limit_range("defaults", {"type": "Container", "default": {"memory": "64Mi"}, "defaultRequest": {"memory": "32Mi"}})],
            {"requests.memory": "10Mi", "limits.memory": "20Mi"},
            id="LimitRange defaults never override values the definition sets",
        ),
        pytest.param(
            {"containers": [container("a", limits={"memory": "20Mi"})]},
            [limit_range("defaults", {"type": "Container", "defaultRequest": {"memory": "32Mi"}})],
            {"requests.memory": "20Mi", "limits.memory": "20Mi"},
            id="a request defaulted from the container's own limit wins over the LimitRange defaultRequest",
        ),
        pytest.param(
            {"containers": [container("a")]},
            [limit_range("only-max", {"type": "Container", "max": {"memory": "1Gi"}})],
            {"requests.memory": "1Gi", "limits.memory": "1Gi"},
            id="a LimitRange with only max defaults the limit and then the request to max",
        ),
        pytest.param(
            {"containers": [container("a")]},
            [limit_range("pod-only", {"type": "Pod", "max": {"memory": "1Gi"}})],
            {"requests.memory": None, "limits.memory": None},
            id="a Pod-type LimitRange gives containers no defaults",
        ),
        pytest.param(
            {"containers": [container("a", {"example.com/gpu": "1"}, {"example.com/gpu": "1"})]},
            [], {"requests.example.com/gpu": "1", "example.com/gpu": None, "limits.example.com/gpu": None},
            id="extended resources count only as requests.<name>",
        ),
        pytest.param(
            {"containers": [container("a", {"cpu": "100m"}), container("b", {"cpu": "100m"})], "resources": {"requests": {"cpu": "150m"}}},
            [], {"requests.cpu": "150m"},
            id="pod-level resources replace the sum of the containers",
        ),
    ],
)
def test_footprint(spec, limit_ranges, expected):
    printed = pod_footprint(spec, limit_ranges=limit_ranges).printable()
    for resource, value in expected.items():
        assert printed.get(resource) == value, resource
    assert printed["pods"] == "1"


@pytest.mark.parametrize(
    ("spec", "best_effort"),
    [
        pytest.param({"containers": [container("a")]}, True, id="a pod with no requests or limits is BestEffort"),
        pytest.param({"containers": [container("a", {"cpu": "1m"})]}, False, id="one cpu request makes the pod NotBestEffort"),
        pytest.param({"containers": [container("a", {"cpu": "0"})]}, True, id="a zero request still leaves the pod BestEffort"),
        pytest.param({"containers": [container("a", {"ephemeral-storage": "1Gi"})]}, True,
                     id="requests other than cpu and memory do not change BestEffort"),
        pytest.param({"initContainers": [container("i", limits={"memory": "1Mi"})], "containers": [container("a")]}, False,
                     id="an init container with a limit makes the pod NotBestEffort"),
    ],
)
def test_best_effort(spec, best_effort):
    assert pod_footprint(spec).best_effort is best_effort


def test_limit_range_defaults_make_a_bare_pod_not_best_effort():
    spec = {"containers": [container("a")]}
    lr = limit_range("defaults", {"type": "Container", "defaultRequest": {"cpu": "25m"}})
    assert pod_footprint(spec, limit_ranges=[lr]).best_effort is False


def test_a_default_limit_below_the_request_is_reported():
    spec = {"containers": [container("a", {"memory": "100Mi"})]}
    lr = limit_range("small", {"type": "Container", "default": {"memory": "64Mi"}})
    problems = pod_footprint(spec, limit_ranges=[lr]).problems
    assert problems == ['container "a": memory request 100Mi is above its limit 64Mi (from LimitRange "small" default); the API server rejects such pods']


def test_explanations_read_as_arithmetic():
    spec = {"containers": [container(f"img{i}", **UPSTREAM) for i in range(5)], "overhead": {"memory": "5Mi"}}
    explain = pod_footprint(spec).explain
    assert explain["limits.memory"] == "20Mi x 5 containers + 5Mi overhead"
    assert explain["requests.cpu"] == "50m x 5 containers"


def test_tracked_but_unset_names_the_containers():
    spec = {"containers": [container("a", **UPSTREAM), container("bare")]}
    missing = pod_footprint(spec).tracked_but_unset(["limits.memory", "pods", "requests.storage"])
    assert missing == {"limits.memory": ["bare"]}


@pytest.mark.parametrize(
    ("item", "default", "default_request"),
    [
        pytest.param({"type": "Container", "max": {"cpu": "1"}}, {"cpu": "1"}, {"cpu": "1"}, id="max becomes the default limit and request"),
        pytest.param({"type": "Container", "min": {"cpu": "10m"}}, {}, {"cpu": "10m"}, id="min becomes the default request"),
        pytest.param({"type": "Container", "default": {"cpu": "500m"}, "min": {"cpu": "10m"}}, {"cpu": "500m"}, {"cpu": "500m"},
                     id="the default limit wins over min as default request"),
    ],
)
def test_limit_range_item_defaulting(item, default, default_request):
    normalized = normalize_limit_range_item(item)
    assert normalized["default"] == default
    assert normalized["defaultRequest"] == default_request
