# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.kip.image_puller.plugins.filter.leftovers import foreign_objects


def result(kind, *objects):
    return {"item": {"kind": kind}, "resources": list(objects)}


def obj(name, **metadata):
    return {"metadata": {"name": name, **metadata}}


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        pytest.param([result("ServiceAccount", obj("default")), result("ConfigMap", obj("kube-root-ca.crt"))], [],
                     id="what Kubernetes puts in every namespace is not foreign"),
        pytest.param([result("Secret", obj("builder-dockercfg-x", annotations={"kubernetes.io/service-account.name": "builder"}))], [],
                     id="secrets kept for a ServiceAccount are not foreign"),
        pytest.param([result("Pod", obj("web-abc", ownerReferences=[{"kind": "ReplicaSet"}]))], [],
                     id="objects a controller owns are not foreign"),
        pytest.param([result("Secret", obj("quay-pull")), result("Deployment", obj("web"))], ["Secret/quay-pull", "Deployment/web"],
                     id="a pull secret and a deployment someone added are foreign"),
        pytest.param([{"skipped": True, "item": {"kind": "Pod"}}, {"failed": False, "resources": []}], [],
                     id="skipped and empty results are nothing"),
    ],
)
def test_foreign_objects(results, expected):
    assert foreign_objects(results) == expected


def test_foreign_objects_needs_a_list():
    with pytest.raises(AnsibleFilterError):
        foreign_objects({})
