# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each seed's own example configuration deployed as given, through image_puller_config.

ansible-playbook kip.image_puller.deploy with image_puller_config naming a fixture of
tests/unit/fixtures/seeds/ (the same files the unit tests read), with wait, on the kwok nodes
(the real node's taint keeps the pods off it; kwok pods run whatever the image). Each case reads
the DaemonSet the role made, then removes it with kip.image_puller.remove. The example that
cannot deploy (seed 000 verbatim holds placeholders) must stop before anything exists in the cluster.
Seed 002 verbatim (an image per architecture) deploys in test_arch.py, which tolerates the ppc64le pool.
Every case names its own namespace (explicit, so it wins over the configuration's NAMESPACE).
"""
from __future__ import annotations

import uuid

import pytest
import yaml

from support import REPO
from test_real_node import Playbook, ok

pytestmark = pytest.mark.cluster

SEEDS = REPO / "tests" / "unit" / "fixtures" / "seeds"
# The role's default puller image, where the configuration names none.
UPSTREAM_PULLER = yaml.safe_load((REPO / "roles" / "image_puller" / "defaults" / "main.yml").read_text(encoding="utf-8"))[
    "image_puller_puller_image"]

# fixture, explicit variables, DaemonSet name, [(container, image)], puller image, pull secrets, line the deploy prints
CASES = [
    pytest.param("000-helm-values-daml.txt", {}, "kubernetes-image-puller",
                 [("canton-enterprise", "acr.example.io/digitalasset/canton-enterprise:2.7.0"),
                  ("canton-enterprise-debug", "acr.example.io/digitalasset/canton-enterprise:2.7.0-debug"),
                  ("http-json", "acr.example.io/http-json:2.7.0")],
                 "quay.io/eclipse/kubernetes-image-puller:next", [],
                 "image_puller_config: read upstream kubernetes-image-puller Helm chart values",
                 id="seed 000: upstream Helm values (Daml images)"),
    # jarvice's arch maps: one DaemonSet per architecture, here amd64 only (seed 002 verbatim: test_arch.py)
    pytest.param("002-jarvice-configmap-single-arch.yaml", {"daemonset_name": "jarvice"}, "jarvice-amd64",
                 [("ubuntu", "docker.io/library/ubuntu:xenial"), ("abc123", "docker.io/kenhill/abc123:test")],
                 UPSTREAM_PULLER, [{"name": "jarvice-docker"}],
                 "derived container names: ubuntu=docker.io/library/ubuntu:xenial, abc123=docker.io/kenhill/abc123:test",
                 id="seed 002: the jarvice image-cache ConfigMap (single architecture)"),
    pytest.param("003-prepuller-values.yaml", {"daemonset_name": "prepull"}, "prepull",
                 [("busybox-1-27", "gcr.io/google-containers/busybox:1.27"), ("busybox-1-musl", "busybox:1-musl")],
                 UPSTREAM_PULLER, [],
                 "image_puller_config ignored (no meaning here): docker.hostPath",
                 id="seed 003: images-prepuller values"),
    pytest.param("004-configmap.yaml", {}, "kubernetes-image-puller",
                 [("java11-maven", "quay.io/eclipse/che-java11-maven:nightly"), ("che-theia", "quay.io/eclipse/che-theia:next")],
                 UPSTREAM_PULLER, [],
                 "set explicitly, winning over image_puller_config: image_puller_namespace",
                 id="seeds 001/004: the upstream ConfigMap"),
    pytest.param("004-openshift-parameters.yaml", {"images": "busybox:1.36"}, "kubernetes-image-puller",
                 [("busybox", "busybox:1.36")], UPSTREAM_PULLER, [],
                 "image_puller_config: read upstream kubernetes-image-puller OpenShift template parameters",
                 id="seed 004: OpenShift template parameters, images given beside them"),
]


@pytest.fixture(name="playbook")
def fixture_playbook(cluster_env, tmp_path) -> Playbook:
    return Playbook(cluster_env, tmp_path)


@pytest.fixture(name="role_namespace")
def fixture_role_namespace(kubectl):
    """A namespace name for the role to create; deleted afterwards."""
    name = f"e2e-seed-{uuid.uuid4().hex[:8]}"
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize(("seed", "explicit", "daemonset", "containers", "puller", "secrets", "printed"), CASES)
def test_a_seed_configuration_deploys_as_given(playbook, kubectl, role_namespace, seed, explicit, daemonset,
                                               containers, puller, secrets, printed):
    variables = {"config": str(SEEDS / seed), "namespace": role_namespace, "wait_timeout": 300, **explicit}
    deployed = playbook("deploy", **variables)
    ok(deployed)
    assert printed in deployed.stdout

    spec = kubectl.json("get", "daemonset", daemonset, "-n", role_namespace)["spec"]["template"]["spec"]
    assert [(c["name"], c["image"]) for c in spec["containers"]] == containers
    assert [c["image"] for c in spec["initContainers"]] == [puller]
    assert (spec.get("imagePullSecrets") or []) == secrets
    status = kubectl.json("get", "daemonset", daemonset, "-n", role_namespace)["status"]
    assert status["desiredNumberScheduled"] > 0
    assert status["numberReady"] == status["desiredNumberScheduled"], status

    ok(playbook("remove", **variables))
    gone = kubectl.run("get", "daemonset", daemonset, "-n", role_namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        pytest.param("000-helm-values.txt", "in image_puller_images (from image_puller_config configMap.images): "
                     "holds the placeholder(s) <image>, <repository>, <tag> of a documentation template",
                     id="seed 000 verbatim: placeholders"),
    ],
)
def test_a_seed_template_with_placeholders_changes_nothing(playbook, kubectl, role_namespace, seed, message):
    refused = playbook("deploy", config=str(SEEDS / seed), namespace=role_namespace)
    assert refused.returncode != 0
    assert message in refused.stdout + refused.stderr, refused.stdout[-4000:]
    assert kubectl.run("get", "namespace", role_namespace, check=False).returncode != 0, "the namespace was created"
